"""Replay a long synthetic conversation through context management (prints figures).

    .venv/bin/python -m bench.context.bench_conversation [--turns 300] [--window 4000]
        [--api openai|anthropic] [--every 25] [--agent]

`--agent` replays a tool-using agent conversation instead and reports the share of prompt
tokens served from the provider's prompt cache and the cost with and without caching
(`bench.context.agent_caching`).

Everything real except the upstream: the official SDKs talk to the built-in emulator, which
serves a model with a small context window so that a few hundred turns overflow it many
times; the summarizer is the configured gpt-4o-mini through the fallback chain; conversations
live in a SQLite store. Each turn: load the history, fit it to the window, call the model
with the fitted prompt, append the turn (and any new summary). Reported per turn: tokens sent
with management and what an unmanaged client would send (the whole history), cost at catalog
prices (`pricing.cost_usd`, the summarizer's calls included), summarization calls, pruning;
and at the end, whether every pinned fact is in the final prompt. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelrouter_server.config import load_config
from modelrouter_server.config.schema import Pricing, RouterConfig
from modelrouter_server.context import (
    ContextManager,
    ConversationService,
    FittedPrompt,
    ModelSummarizer,
    SQLiteStore,
    TokenCounter,
)
from modelrouter_server.domain import Importance, Message, ProviderRequest, Role, Usage
from modelrouter_server.emulator import DEFAULT_MODELS, Behavior, EmulatedModel, Emulator
from modelrouter_server.pricing import cost_usd
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.factory import build_providers
from modelrouter_server.resilience import BreakerRegistry, FallbackChain

from bench.context.agent_caching import print_agent_totals, replay_agent

BENCH_MODEL = "bench-small"
TOPICS = (
    "the database migration",
    "the quarterly budget",
    "the on-call rota",
    "the mobile release",
    "the vendor contract",
    "the hiring plan",
)
FILLER = (
    "could", "you", "walk", "me", "through", "the", "trade-offs", "again,", "including",
    "the", "risks", "we", "discussed", "and", "rough", "timeline,", "say", "which", "option",
    "you", "would", "pick", "and", "why",
)  # fmt: skip


@dataclass
class Totals:
    sent: int = 0
    unmanaged: int = 0
    cost: float = 0.0
    unmanaged_cost: float = 0.0
    summaries: int = 0
    summarizer_cost: float = 0.0
    pruned: int = 0
    over_window_from: int | None = None
    billed_mismatches: int = 0
    underestimates: int = 0


def bench_config(api: str, window: int, output: int, *, agent: bool = False) -> RouterConfig:
    """The default catalog plus one small-window model priced like gpt-4o-mini (for the
    agent replay: priced like the API's own model, with its tools and caching)."""
    base = load_config()
    raw = base.model_dump(mode="json")
    provider, tokenizer = (
        ("openai", "o200k_base") if api == "openai" else ("anthropic", "anthropic")
    )
    raw["models"][BENCH_MODEL] = {
        "provider": provider,
        "context_window": window,
        "max_output_tokens": output,
        "default_output_tokens": output,
        "tokenizer": tokenizer,
        "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
    }
    if agent:
        real = "claude-3-7-sonnet-20250219" if api == "anthropic" else "gpt-4o-mini-2024-07-18"
        raw["models"][BENCH_MODEL]["pricing"] = raw["models"][real]["pricing"]
        raw["models"][BENCH_MODEL]["capabilities"] = raw["models"][real]["capabilities"]
    raw["context"]["summary_max_tokens"] = 300
    return RouterConfig.model_validate(raw)


def user_message(turn: int, rng: random.Random) -> Message:
    """The user's turn: mostly questions; pinned facts now and then; low-value chatter."""
    if turn % 60 == 30:
        fact = f"Pinned fact {turn // 60}: the code word for {rng.choice(TOPICS)} is K{turn}X."
        return Message(Role.USER, fact, pinned=True)
    if turn % 7 == 3:
        return Message(Role.USER, "Thanks, that helps.", importance=Importance.LOW)
    words = " ".join(rng.choice(FILLER) for _ in range(rng.randint(15, 110)))
    importance = Importance.HIGH if turn % 11 == 5 else Importance.NORMAL
    return Message(
        Role.USER, f"Turn {turn}, about {rng.choice(TOPICS)}: {words}?", importance=importance
    )


OPENING = (
    Message(Role.SYSTEM, "You are the team's planning assistant. Be concise."),
    Message(Role.USER, "Pinned fact 0: the project is called Nightjar.", pinned=True),
    Message(Role.ASSISTANT, "Noted: the project is Nightjar."),
)


@dataclass
class Session:
    """One replayed conversation: the stages its turns go through and what they cost."""

    args: argparse.Namespace
    config: RouterConfig
    provider: Provider
    counter: TokenCounter
    context: ContextManager
    conversations: ConversationService
    conversation_id: str
    summarizer_pricing: Pricing
    everything: list[Message]
    """What an unmanaged client would resend: every message so far."""
    pinned_facts: list[str] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    fitted: FittedPrompt | None = None

    async def play(self, turn_no: int, message: Message) -> None:
        """One turn: load the history, fit it, call the model, store the turn, count."""
        args = self.args
        if message.pinned:
            self.pinned_facts.append(message.content)
        turn = await self.conversations.open_turn(self.conversation_id, [message])
        self.everything.append(message)
        unmanaged = self.counter.count_local(BENCH_MODEL, self.everything)
        fitted = await self.context.fit(BENCH_MODEL, turn.messages, args.output, seqs=turn.seqs)
        self.fitted = fitted
        completion = await self.provider.complete(
            ProviderRequest(
                model=BENCH_MODEL, messages=fitted.messages, max_output_tokens=args.output
            )
        )
        if completion.usage is None:
            raise RuntimeError(f"{BENCH_MODEL} sent no usage: nothing to measure")
        usage = completion.usage
        await self.conversations.record_turn(
            turn, completion.text, model_id=BENCH_MODEL, fitted=fitted
        )
        self.everything.append(Message(Role.ASSISTANT, completion.text))
        self.counter.observe(BENCH_MODEL, fitted.messages, usage.input_tokens)
        self.account(turn_no, fitted, usage, unmanaged)
        if turn_no % args.every == 0 or turn_no == args.turns - 1:
            report, totals = fitted.report, self.totals
            print(
                f"{turn_no:>5} {len(turn.messages):>8} {unmanaged:>10,} "
                f"{report.sent_tokens:>6,} {report.budget_tokens:>6,} "
                f"{report.summarized_messages:>5} {report.pruned_messages:>6} "
                f"{totals.summaries:>9} {totals.cost:>10.5f} "
                f"{totals.unmanaged_cost:>12.5f}"
            )

    def account(self, turn_no: int, fitted: FittedPrompt, usage: Usage, unmanaged: int) -> None:
        """Add one turn's tokens and cost, managed and unmanaged, to the totals."""
        args, totals = self.args, self.totals
        pricing = self.config.models[BENCH_MODEL].pricing
        report = fitted.report
        totals.sent += report.sent_tokens
        totals.unmanaged += unmanaged
        totals.pruned += report.pruned_messages
        turn_cost = cost_usd(pricing, usage)
        if fitted.replaced is not None and fitted.replaced.usage != Usage():
            totals.summaries += 1
            summary_cost = cost_usd(self.summarizer_pricing, fitted.replaced.usage)
            totals.summarizer_cost += summary_cost
            turn_cost += summary_cost
        totals.cost += turn_cost
        totals.unmanaged_cost += cost_usd(
            pricing, Usage(input_tokens=unmanaged, output_tokens=usage.output_tokens)
        )
        if unmanaged + args.output > args.window and totals.over_window_from is None:
            totals.over_window_from = turn_no
        billed = usage.input_tokens
        if args.api == "openai" and billed != report.sent_tokens:
            totals.billed_mismatches += 1
        if billed > report.sent_tokens:
            totals.underestimates += 1


def emulated_bench_model(args: argparse.Namespace) -> EmulatedModel:
    """The emulator's stand-in for the benchmarked model, with the window under test."""
    return EmulatedModel(
        id=BENCH_MODEL,
        api="openai" if args.api == "openai" else "anthropic",
        context_window=args.window,
        max_output_tokens=args.output,
    )


async def replay_agent_conversation(args: argparse.Namespace) -> None:
    config = bench_config(args.api, args.window, args.output, agent=True)
    summarizer_id = config.resolve(config.context.summarizer_model)
    assert summarizer_id is not None
    emulated = emulated_bench_model(args)
    async with Emulator((*DEFAULT_MODELS, emulated)) as emulator:
        emulator.set_behavior(summarizer_id, Behavior(output_tokens=150))
        providers = build_providers(config, env={}, emulator_base_url=emulator.base_url)
        counter = TokenCounter(config, providers)
        chain = FallbackChain(providers, BreakerRegistry(), config.resilience, counter=counter)
        context = ContextManager(
            config, counter, summarizer=ModelSummarizer(config, chain.complete_request)
        )
        explicit = config.models[BENCH_MODEL].capabilities.prompt_caching
        print(
            f"{args.turns} agent turns on {BENCH_MODEL} ({args.api}, window {args.window:,}, "
            f"priced as the API's model; caching {'breakpoints' if explicit else 'automatic'})\n"
        )
        try:
            totals = await replay_agent(
                args,
                config,
                BENCH_MODEL,
                providers[config.models[BENCH_MODEL].provider],
                emulator,
                counter,
                context,
            )
        finally:
            for provider in providers.values():
                await provider.aclose()
        summarizer_calls = sum(1 for r in emulator.requests if r.model == summarizer_id)
    print_agent_totals(totals, summarizer_calls)


async def replay(args: argparse.Namespace) -> None:
    if args.agent:
        await replay_agent_conversation(args)
        return
    config = bench_config(args.api, args.window, args.output)
    model = config.models[BENCH_MODEL]
    summarizer_id = config.resolve(config.context.summarizer_model)
    assert summarizer_id is not None
    emulated = emulated_bench_model(args)
    rng = random.Random(args.seed)

    async with Emulator((*DEFAULT_MODELS, emulated)) as emulator:
        emulator.set_behavior(BENCH_MODEL, Behavior(output_tokens=args.reply_words))
        emulator.set_behavior(summarizer_id, Behavior(output_tokens=150))
        providers = build_providers(config, env={}, emulator_base_url=emulator.base_url)
        counter = TokenCounter(config, providers)
        chain = FallbackChain(providers, BreakerRegistry(), config.resilience, counter=counter)
        summarizer = ModelSummarizer(config, chain.complete_request)
        with tempfile.TemporaryDirectory() as scratch:
            store = await SQLiteStore.open(Path(scratch) / "bench.db")
            conversations = ConversationService(store, counter, config)
            try:
                created = await conversations.create(OPENING, {"bench": "conversation"})
                session = Session(
                    args=args,
                    config=config,
                    provider=providers[model.provider],
                    counter=counter,
                    context=ContextManager(config, counter, summarizer=summarizer),
                    conversations=conversations,
                    conversation_id=created.id,
                    summarizer_pricing=config.models[summarizer_id].pricing,
                    everything=list(OPENING),
                    pinned_facts=[OPENING[1].content],
                )
                print(
                    f"{args.turns} turns on {BENCH_MODEL} ({args.api}, window {args.window:,}, "
                    f"output {args.output}); summarizer {summarizer_id}\n"
                )
                print(
                    f"{'turn':>5} {'history':>8} {'unmanaged':>10} {'sent':>6} {'budget':>6} "
                    f"{'summ.':>5} {'pruned':>6} {'summaries':>9} {'cost $':>10} "
                    f"{'unmanaged $':>12}"
                )
                for turn_no in range(args.turns):
                    await session.play(turn_no, user_message(turn_no, rng))
                stored = await conversations.get(created.id)
            finally:
                await store.aclose()
                for provider in providers.values():
                    await provider.aclose()

    assert session.fitted is not None
    final_prompt = "\n".join(m.content for m in session.fitted.messages)
    present = [fact in final_prompt for fact in session.pinned_facts]
    summarizer_requests = sum(1 for r in emulator.requests if r.model == summarizer_id)
    print_totals(args, session.totals, stored.message_count, summarizer_requests, present)


def print_totals(
    args: argparse.Namespace,
    totals: Totals,
    stored_messages: int,
    summarizer_requests: int,
    present: Sequence[bool],
) -> None:
    print("\nTotals")
    print(f"  tokens sent, managed      {totals.sent:>12,}")
    print(
        f"  tokens sent, unmanaged    {totals.unmanaged:>12,}  "
        f"({totals.unmanaged / max(totals.sent, 1):.1f}x)"
    )
    if totals.over_window_from is not None:
        print(
            f"  unmanaged history overflows the {args.window:,}-token window from turn "
            f"{totals.over_window_from}: every later unmanaged request would be refused"
        )
    print(
        f"  cost, managed             ${totals.cost:>11.5f}  "
        f"(summarizer ${totals.summarizer_cost:.5f})"
    )
    print(f"  cost, unmanaged           ${totals.unmanaged_cost:>11.5f}")
    print(
        f"  summarization calls       {totals.summaries:>12}  (emulator saw {summarizer_requests})"
    )
    print(f"  messages pruned (sum)     {totals.pruned:>12,}")
    print(f"  messages stored           {stored_messages:>12,}  (originals kept + summaries)")
    if args.api == "openai":
        print(f"  billed != counted turns   {totals.billed_mismatches:>12}  (exact counting check)")
    else:
        print(
            f"  billed > estimated turns  {totals.underestimates:>12}  (the estimate must err high)"
        )
    print(f"  pinned facts in the final prompt: {sum(present)}/{len(present)}")
    if not all(present):
        print("  MISSING pinned facts!")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--window", type=int, default=4_000)
    parser.add_argument("--output", type=int, default=256, help="max_output_tokens per turn")
    parser.add_argument("--reply-words", type=int, default=60, help="emulator answer length")
    parser.add_argument("--api", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--every", type=int, default=25, help="print every Nth turn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--agent", action="store_true", help="a tool-using agent conversation: prompt caching"
    )
    asyncio.run(replay(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
