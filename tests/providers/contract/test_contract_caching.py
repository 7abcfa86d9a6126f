"""Prompt caching against the emulator: Claude requests carry cache_control breakpoints on
the tools, the system prompt and the conversation's stable prefix, and both providers'
cache usage comes back in `Usage` (Anthropic's cache_creation/cache_read figures, OpenAI's
automatic `cached_tokens`)."""

from __future__ import annotations

import pytest
from modelrouter_server.domain import Message, ProviderRequest, Role, Tool, ToolSettings, Usage
from modelrouter_server.emulator import Emulator
from modelrouter_server.providers import AnthropicProvider, OpenAIProvider

from ..support import CLAUDE, GPT_4O_MINI, collect, reported

pytestmark = pytest.mark.asyncio(loop_scope="module")

EPHEMERAL = {"type": "ephemeral"}
LONG_SYSTEM = "You are the operations assistant. " + "Follow the runbook exactly. " * 400
TOOLS = ToolSettings((Tool("search", "Search.", {"type": "object", "properties": {}}),))


def turns(n: int) -> tuple[Message, ...]:
    out = [Message(Role.SYSTEM, LONG_SYSTEM)]
    for i in range(n):
        out.append(Message(Role.USER, f"Question {i}: what is step {i}?"))
        out.append(Message(Role.ASSISTANT, f"Step {i} is to check the logs."))
    out.append(Message(Role.USER, f"Question {n}: what is step {n}?"))
    return tuple(out)


def request(model: str, messages: tuple[Message, ...], *, cache: bool = True) -> ProviderRequest:
    return ProviderRequest(
        model=model,
        messages=messages,
        max_output_tokens=64,
        timeout_s=10.0,
        tools=TOOLS,
        prompt_cache=cache,
    )


async def test_claude_gets_breakpoints_on_tools_system_and_the_stable_prefix(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    await claude.complete(request(CLAUDE, turns(2)))

    body = emulator.requests[-1].body
    assert isinstance(body, dict)
    assert body["tools"][-1]["cache_control"] == EPHEMERAL
    assert body["system"] == [{"type": "text", "text": LONG_SYSTEM, "cache_control": EPHEMERAL}]
    messages = body["messages"]
    marked = [i for i, m in enumerate(messages) if isinstance(m["content"], list)]
    # The history before the newest turn (read now) and the newest turn (for next time).
    assert marked == [len(messages) - 2, len(messages) - 1]
    assert messages[-2]["content"] == [
        {"type": "text", "text": "Step 1 is to check the logs.", "cache_control": EPHEMERAL}
    ]


async def test_without_caching_nothing_is_marked(
    claude: AnthropicProvider, emulator: Emulator
) -> None:
    await claude.complete(request(CLAUDE, turns(2), cache=False))

    body = emulator.requests[-1].body
    assert isinstance(body, dict)
    assert body["system"] == LONG_SYSTEM
    assert "cache_control" not in str(body)


async def test_claude_writes_the_prefix_then_reads_it_on_the_next_turn(
    claude: AnthropicProvider,
) -> None:
    first = reported((await claude.complete(request(CLAUDE, turns(1)))).usage)
    second = reported((await claude.complete(request(CLAUDE, turns(2)))).usage)
    streamed = reported((await collect(claude.stream(request(CLAUDE, turns(3))))).end.usage)

    assert first.cache_read_tokens == 0 and first.cache_write_tokens > 1024
    # The next turn starts with everything the first one sent: read from the cache.
    assert second.cache_read_tokens >= first.cache_write_tokens
    assert second.cache_write_tokens > 0
    assert streamed.cache_read_tokens > second.cache_read_tokens
    for usage in (first, second, streamed):
        assert usage.input_tokens >= usage.cache_read_tokens + usage.cache_write_tokens


async def test_openai_reports_its_automatic_caching(gpt: OpenAIProvider) -> None:
    first = reported((await gpt.complete(request(GPT_4O_MINI, turns(1)))).usage)
    second = reported((await gpt.complete(request(GPT_4O_MINI, turns(2)))).usage)

    assert first.cache_read_tokens == 0
    assert second.cache_read_tokens >= 1024
    assert second.cache_read_tokens % 128 == 0
    assert second.cache_read_tokens < second.input_tokens
    assert isinstance(second, Usage)
