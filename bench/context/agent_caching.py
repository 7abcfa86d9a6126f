"""A tool-using agent conversation, replayed with and without prompt caching (figures).

    .venv/bin/python -m bench.context.bench_conversation --agent [--turns 300]
        [--api anthropic|openai] [--window 200000]

Each turn: the user asks, the model calls a tool (scripted in the emulator), the tool's
result goes back, the model answers; the history (system prompt, tools, every call and
result) is fitted to the window by the real context manager and sent through the real
provider and SDK to the emulator, which bills cache reads and writes as the provider
does. Reported: the share of prompt tokens served from the cache, and the cost at catalog
prices with caching and with every prompt token billed at the full input price.
"""

from __future__ import annotations

import argparse
import json
import random

from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import ContextManager, TokenCounter
from modelrouter_server.domain import (
    Message,
    ProviderRequest,
    Role,
    Tool,
    ToolCall,
    ToolResult,
    ToolSettings,
    Usage,
)
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import ScriptedToolCall
from modelrouter_server.pricing import cost_usd
from modelrouter_server.providers.base import Provider

SYSTEM = (
    "You are the on-call operations agent. Use the tools to inspect services before you "
    "answer; quote the figures you read. " + "Follow the runbook step by step. " * 120
)
TOOLS = ToolSettings(
    (
        Tool(
            "service_status",
            "The health, error rate and latency of one service.",
            {"type": "object", "properties": {"service": {"type": "string"}}},
        ),
        Tool(
            "recent_deploys",
            "The deploys of one service in the last day.",
            {"type": "object", "properties": {"service": {"type": "string"}}},
        ),
    )
)
SERVICES = ("checkout", "search", "billing", "auth", "inventory", "email")


class AgentTotals:
    def __init__(self) -> None:
        self.input = 0
        self.cache_read = 0
        self.cache_write = 0
        self.cost = 0.0
        self.uncached_cost = 0.0
        self.calls = 0


async def replay_agent(
    args: argparse.Namespace, config: RouterConfig, model: str, provider: Provider,
    emulator: Emulator, counter: TokenCounter, context: ContextManager,
) -> AgentTotals:  # fmt: skip
    """Play `args.turns` agent turns (two model calls each) on `model`."""
    rng = random.Random(args.seed)
    pricing = config.models[model].pricing
    cache = config.models[model].capabilities.prompt_caching
    history: list[Message] = [Message(Role.SYSTEM, SYSTEM)]
    totals = AgentTotals()
    print(f"{'turn':>5} {'prompt':>8} {'cached %':>8} {'cost $':>10} {'uncached $':>11}")
    for turn in range(args.turns):
        service = rng.choice(SERVICES)
        history.append(Message(Role.USER, f"Turn {turn}: is {service} healthy right now?"))
        tool = rng.choice(TOOLS.tools).name
        emulator.enqueue(
            model,
            Behavior(tool_calls=(ScriptedToolCall(tool, json.dumps({"service": service})),)),
            Behavior(output_tokens=args.reply_words),
        )
        for _ in range(2):
            fitted = await context.fit(model, history, args.output)
            completion = await provider.complete(
                ProviderRequest(
                    model=model,
                    messages=fitted.messages,
                    max_output_tokens=args.output,
                    tools=TOOLS,
                    prompt_cache=cache,
                )
            )
            usage = completion.usage or Usage()
            totals.calls += 1
            totals.input += usage.input_tokens
            totals.cache_read += usage.cache_read_tokens
            totals.cache_write += usage.cache_write_tokens
            totals.cost += cost_usd(pricing, usage)
            totals.uncached_cost += cost_usd(
                pricing, Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
            )
            if completion.tool_calls:
                history.append(
                    Message(Role.ASSISTANT, completion.text, parts=completion.tool_calls)
                )
                history.append(
                    Message(
                        Role.TOOL, "", parts=tuple(_result(c, rng) for c in completion.tool_calls)
                    )
                )
            else:
                history.append(Message(Role.ASSISTANT, completion.text))
        if turn % args.every == 0 or turn == args.turns - 1:
            share = totals.cache_read / max(totals.input, 1)
            print(
                f"{turn:>5} {fitted.report.sent_tokens:>8,} {share:>8.1%} "
                f"{totals.cost:>10.4f} {totals.uncached_cost:>11.4f}"
            )
    return totals


def _result(call: ToolCall, rng: random.Random) -> ToolResult:
    figures = {
        "healthy": rng.random() > 0.2,
        "error_rate": round(rng.random() / 20, 4),
        "p99_ms": rng.randint(80, 900),
        "deploys": [f"v{rng.randint(100, 999)}" for _ in range(rng.randint(0, 3))],
    }
    return ToolResult(call.id, json.dumps(figures))


def print_agent_totals(totals: AgentTotals, summarizer_calls: int) -> None:
    print("\nAgent totals")
    print(f"  model calls               {totals.calls:>12,}")
    # Each new summary rewrites the start of the prompt: few calls, a stable prefix.
    print(f"  summarizer calls          {summarizer_calls:>12,}")
    print(f"  prompt tokens             {totals.input:>12,}")
    print(
        f"  read from the cache       {totals.cache_read:>12,}  "
        f"({totals.cache_read / max(totals.input, 1):.1%} of prompt tokens)"
    )
    print(f"  written to the cache      {totals.cache_write:>12,}")
    print(f"  cost with caching         ${totals.cost:>11.4f}")
    print(
        f"  cost without caching      ${totals.uncached_cost:>11.4f}  "
        f"(caching saves {1 - totals.cost / max(totals.uncached_cost, 1e-12):.1%})"
    )
