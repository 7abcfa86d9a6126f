"""Token counting throughput and what the per-message cache saves (prints figures).

    .venv/bin/python -m bench.context.bench_tokens [--messages 2000] [--turns 300]

1. Cold: every message tokenized once (empty cache), per vocabulary.
2. Warm: the same messages again (all cached).
3. A growing conversation: one request per turn counts the whole history, as the router
   does; with the cache only the new turn is tokenized, without it everything is, each time.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from modelrouter_server.config import load_config
from modelrouter_server.context import TokenCounter
from modelrouter_server.domain import Message, Role

WORDS = (
    "the", "router", "keeps", "every", "conversation", "inside", "the", "window", "of", "model",
    "that", "serves", "it", "while", "summaries", "replace", "old", "turns", "and", "pinned",
    "facts", "stay", "where", "they", "are", "budget", "deployment", "latency", "fallback",
    "provider", "stream", "token", "cache", "summary", "importance", "def", "class", "return",
    "await", "async", "import", "from", "self", "config", "yield", "2024", "42", "3.14", "{}",
    "[]", "()", "Überprüfung", "naïve", "café", "東京", "данные",
)  # fmt: skip

MODELS = {
    "o200k_base (gpt-4o-mini)": "gpt-4o-mini-2024-07-18",
    "claude estimate (sonnet)": "claude-3-7-sonnet-20250219",
}


def synthetic_messages(count: int, seed: int = 7) -> list[Message]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        length = rng.randint(20, 400)
        out.append(Message(role, f"#{i} " + " ".join(rng.choice(WORDS) for _ in range(length))))
    return out


def timed(work: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def throughput(label: str, model: str, messages: Sequence[Message]) -> None:
    counter = TokenCounter(load_config(), {})
    counter.count_local(model, messages[:1])  # load the vocabulary outside the timing
    chars = sum(len(m.content) for m in messages)
    cold_s, tokens = timed(lambda: counter.count_local(model, messages))
    warm_s, _ = timed(lambda: counter.count_local(model, messages))
    print(
        f"  {label:<26} {tokens:>10,} tokens  cold {tokens / cold_s:>12,.0f} tok/s "
        f"({chars / cold_s / 1e6:5.1f} MB/s)  warm {warm_s * 1e3:7.2f} ms "
        f"({cold_s / warm_s:5.1f}x faster)"
    )


def growing_conversation(model: str, messages: Sequence[Message], turns: int) -> None:
    config = load_config()
    cached = TokenCounter(config, {})
    # One entry: every lookup misses, so each request tokenizes its whole history.
    uncached = TokenCounter(config, {}, cache_entries=1)
    cached.count_local(model, messages[:1])
    history = list(messages[: 2 * turns])

    def replay(counter: TokenCounter) -> int:
        total = 0
        for end in range(2, len(history) + 1, 2):
            total += counter.count_local(model, history[:end])
        return total

    with_s, counted = timed(lambda: replay(cached))
    without_s, counted_again = timed(lambda: replay(uncached))
    assert counted == counted_again
    stats = cached.cache_stats()
    print(
        f"  {turns} requests, history up to {len(history)} messages "
        f"({counted:,} tokens counted in all)"
    )
    print(
        f"    with the cache    {with_s * 1e3:9.1f} ms  ({with_s / turns * 1e3:6.3f} ms/request; "
        f"{stats.misses:,} tokenizations, {stats.hits:,} hits)"
    )
    print(
        f"    without the cache {without_s * 1e3:9.1f} ms  "
        f"({without_s / turns * 1e3:6.3f} ms/request)  -> {without_s / with_s:5.1f}x slower"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--turns", type=int, default=300)
    args = parser.parse_args(argv)

    messages = synthetic_messages(max(args.messages, 2 * args.turns))
    print(f"Token counting, {args.messages:,} synthetic messages (20-400 words each)")
    for label, model in MODELS.items():
        throughput(label, model, messages[: args.messages])
    print("\nA growing conversation, counted once per request (gpt-4o-mini)")
    growing_conversation(MODELS["o200k_base (gpt-4o-mini)"], messages, args.turns)


if __name__ == "__main__":
    main()
