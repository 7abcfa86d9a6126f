"""The emulator's answers: deterministic text, the continuation rule, and output limits.

An answer is a list of tokens, each a word with its leading space (" lorem"), drawn from a
fixed word list by an RNG seeded from the conversation, so the same conversation always
gets the same answer from any model.

Continuation rule: the router resumes a broken stream by sending the text it already has
as an assistant message, either last (Anthropic prefill) or followed by one more user
message (how it asks OpenAI models to go on). When that assistant text is a proper prefix
of the answer the messages before it would get, the reply is only the rest of that answer,
so the two parts join with no gap and no repetition.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelrouter_server.emulator.behavior import Behavior
from modelrouter_server.emulator.conversation import Turn, conversation_key

WORDS: tuple[str, ...] = (
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed",
    "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
    "aliqua", "enim", "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco",
    "laboris", "nisi", "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute",
    "irure", "in", "reprehenderit", "voluptate", "velit", "esse", "cillum", "fugiat",
    "nulla", "pariatur", "excepteur", "sint", "occaecat", "cupidatat", "non", "proident",
    "sunt", "culpa", "qui", "officia", "deserunt", "mollit", "anim", "id", "est", "laborum",
)  # fmt: skip

_TOKEN = re.compile(r"\s*\S+|\s+")

StopKind = Literal["end", "max_tokens", "stop_sequence"]


def split_tokens(text: str) -> list[str]:
    """Split text on word boundaries, each token keeping the whitespace before it."""
    return _TOKEN.findall(text)


def _rng(turns: Sequence[Turn], purpose: bytes) -> random.Random:
    digest = hashlib.sha256(purpose + b"\0" + conversation_key(turns)).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def canonical_answer(turns: Sequence[Turn], behavior: Behavior) -> str:
    """The whole answer this conversation gets: `behavior.text`, or `output_tokens` words."""
    if behavior.text is not None:
        return behavior.text
    rng = _rng(turns, b"answer")
    return "".join(" " + rng.choice(WORDS) for _ in range(behavior.output_tokens))


def thinking_tokens(turns: Sequence[Turn], count: int) -> list[str]:
    """The deterministic text of a thinking block, `count` tokens long."""
    rng = _rng(turns, b"thinking")
    return [("" if i == 0 else " ") + rng.choice(WORDS) for i in range(count)]


def _prefix_index(turns: Sequence[Turn]) -> int | None:
    """Where a would-be continuation's assistant message sits, if anywhere."""
    roles = [t.role for t in turns]
    if roles and roles[-1] == "assistant":
        return len(turns) - 1
    if roles[-2:] == ["assistant", "user"]:
        return len(turns) - 2
    return None


def answer_tokens(turns: Sequence[Turn], behavior: Behavior) -> list[str]:
    """The tokens to send for this conversation, applying the continuation rule."""
    index = _prefix_index(turns)
    if index is not None:
        # Leading whitespace is ignored on both sides: answers start with a space that a
        # caller may have trimmed from the text it sends back.
        prefix = turns[index].text.strip()
        full = canonical_answer(turns[:index], behavior).lstrip()
        if prefix and len(prefix) < len(full) and full.startswith(prefix):
            return split_tokens(full[len(prefix) :])
    return split_tokens(canonical_answer(turns, behavior))


@dataclass(frozen=True)
class LimitedAnswer:
    """The tokens actually generated, and why generation stopped."""

    tokens: tuple[str, ...]
    stop: StopKind
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def limit_answer(
    tokens: Sequence[str], max_tokens: int, stop_sequences: Sequence[str]
) -> LimitedAnswer:
    """Cut the answer at `max_tokens`, then before the first stop sequence it contains."""
    kept = list(tokens[: max(max_tokens, 0)])
    stop: StopKind = "max_tokens" if len(kept) < len(tokens) else "end"
    text = "".join(kept)
    hits = [(text.find(s), s) for s in stop_sequences if s and s in text]
    if not hits:
        return LimitedAnswer(tuple(kept), stop)
    cut, sequence = min(hits)
    generated: list[str] = []
    length = 0
    for token in kept:
        if length + len(token) > cut:
            if cut > length:
                generated.append(token[: cut - length])
            break
        generated.append(token)
        length += len(token)
    return LimitedAnswer(tuple(generated), "stop_sequence", sequence)
