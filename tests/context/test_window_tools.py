"""Fitting keeps tool exchanges whole: an assistant message's tool calls and the ROLE_TOOL
results that answer them are pruned or summarized together, never one without the other
(which both APIs refuse). `check_role_order`, the rule the API edge applies, is the oracle."""

from __future__ import annotations

import random

import pytest
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import ContextManager, ModelSummarizer, TokenCounter
from modelrouter_server.domain import Importance, Message, Role, ToolCall, ToolResult
from modelrouter_server.emulator import Emulator
from modelrouter_server.providers.base import Provider
from modelrouter_server.resilience import BreakerRegistry, FallbackChain
from modelrouter_server.validation import check_role_order

from .conftest import SMALL_GPT, SMALL_WINDOW

OUTPUT = 500
BUDGET = SMALL_WINDOW - OUTPUT - 100
SYSTEM = Message(Role.SYSTEM, "You are an agent with tools.")


def words(tag: str, n: int) -> str:
    return f"{tag}:" + " fact" * n


def agent_dialogue(turns: int, rng: random.Random) -> list[Message]:
    """User turns, each answered by one or two tool exchanges and a text reply."""
    out: list[Message] = []
    for i in range(turns):
        importance = rng.choice(list(Importance))
        out.append(
            Message(Role.USER, words(f"ask {i}", rng.randint(10, 120)), importance=importance)
        )
        for j in range(rng.randint(1, 2)):
            ids = [f"call_{i}_{j}_{k}" for k in range(rng.randint(1, 3))]
            out.append(
                Message(
                    Role.ASSISTANT,
                    "",
                    importance=rng.choice(list(Importance)),
                    parts=tuple(ToolCall(c, "search", {"q": words(c, 5)}) for c in ids),
                )
            )
            out.append(
                Message(
                    Role.TOOL,
                    "",
                    importance=rng.choice(list(Importance)),
                    parts=tuple(
                        ToolResult(c, words(f"result {c}", rng.randint(20, 200))) for c in ids
                    ),
                )
            )
        out.append(Message(Role.ASSISTANT, words(f"answer {i}", rng.randint(10, 80))))
    return out


def calls_and_results(messages: tuple[Message, ...]) -> tuple[set[str], set[str]]:
    calls = {c.id for m in messages for c in m.tool_calls}
    results = {r.tool_call_id for m in messages for r in m.tool_results}
    return calls, results


@pytest.fixture
def counter(config: RouterConfig) -> TokenCounter:
    return TokenCounter(config, {})


@pytest.mark.parametrize("seed", range(15))
async def test_pruning_drops_tool_exchanges_whole(
    config: RouterConfig, counter: TokenCounter, seed: int
) -> None:
    rng = random.Random(seed)
    messages = [SYSTEM, *agent_dialogue(14, rng), Message(Role.USER, "And now?")]
    assert counter.count_local(SMALL_GPT, messages) > BUDGET

    fitted = await ContextManager(config, counter).fit(SMALL_GPT, messages, OUTPUT)

    assert fitted.report.pruned_messages > 0
    assert fitted.report.sent_tokens <= BUDGET
    check_role_order(fitted.messages)
    calls, results = calls_and_results(fitted.messages)
    assert calls == results


async def test_the_latest_tool_exchange_is_never_removed(
    config: RouterConfig, counter: TokenCounter
) -> None:
    rng = random.Random(7)
    tail = [
        Message(Role.USER, "Find it."),
        Message(Role.ASSISTANT, "", parts=(ToolCall("call_last", "search", {"q": "it"}),)),
        Message(Role.TOOL, "", parts=(ToolResult("call_last", words("found", 50)),)),
    ]
    messages = [SYSTEM, *agent_dialogue(14, rng), *tail]

    fitted = await ContextManager(config, counter).fit(SMALL_GPT, messages, OUTPUT)

    assert fitted.messages[-3:] == tuple(tail)
    check_role_order(fitted.messages)


@pytest.mark.parametrize("seed", range(4))
async def test_a_summary_never_leaves_an_orphan_result(
    config: RouterConfig,
    providers: dict[str, Provider],
    counter: TokenCounter,
    emulator: Emulator,
    seed: int,
) -> None:
    chain = FallbackChain(providers, BreakerRegistry(), config.resilience, counter=counter)
    manager = ContextManager(
        config, counter, summarizer=ModelSummarizer(config, chain.complete_request)
    )
    rng = random.Random(seed)
    messages = [SYSTEM, *agent_dialogue(10, rng), Message(Role.USER, "Where are we?")]

    fitted = await manager.fit(SMALL_GPT, messages, OUTPUT)

    replaced = fitted.replaced
    assert replaced is not None
    summarized = [messages[i] for i in replaced.indexes]
    calls, results = calls_and_results(tuple(summarized))
    assert calls == results, "a summary took a call without its result, or the reverse"
    check_role_order(fitted.messages)
    calls, results = calls_and_results(fitted.messages)
    assert calls == results
