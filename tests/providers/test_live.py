"""The providers against the real APIs. Each test runs only when its key is set, e.g.

    ANTHROPIC_API_KEY=... OPENAI_API_KEY=... .venv/bin/pytest -m live tests/providers

Answers are kept to a few tokens, so a run costs a fraction of a cent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from modelrouter_server.config import ProviderKind
from modelrouter_server.domain import FinishReason, Message, ReasoningEffort, Role
from modelrouter_server.errors import AuthenticationFailed
from modelrouter_server.providers import AnthropicProvider, Connection, OpenAIProvider

from .conftest import CATALOG
from .support import CLAUDE, GPT_4O_MINI, O3_MINI, collect, reported, request

pytestmark = pytest.mark.live

QUESTION = Message(Role.USER, "Reply with the single word: pong")


def _key(variable: str) -> str:
    key = os.environ.get(variable, "")
    if not key:
        pytest.skip(f"{variable} is not set")
    return key


def _live(key: str) -> Connection:
    # base_url None: the SDK's default endpoint, or its own *_BASE_URL variable.
    return Connection(api_key=key, timeout_s=60.0)


@pytest.fixture
async def live_claude() -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider("anthropic", _live(_key("ANTHROPIC_API_KEY")))
    yield provider
    await provider.aclose()


@pytest.fixture
async def live_gpt() -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(
        "openai", _live(_key("OPENAI_API_KEY")), models=CATALOG, kind=ProviderKind.OPENAI
    )
    yield provider
    await provider.aclose()


async def test_claude_answers_and_streams(live_claude: AnthropicProvider) -> None:
    req = request(CLAUDE, QUESTION, max_output_tokens=16, timeout_s=60.0)

    completion = await live_claude.complete(req)
    streamed = await collect(live_claude.stream(req))

    assert "pong" in completion.text.lower()
    assert completion.finish_reason is FinishReason.STOP
    assert "pong" in streamed.text.lower()
    assert reported(streamed.end.usage).input_tokens > 0


async def test_claude_counts_tokens_and_continues_a_prefill(
    live_claude: AnthropicProvider,
) -> None:
    counted = await live_claude.count_tokens(CLAUDE, [QUESTION])
    prefill = Message(Role.ASSISTANT, "The word is ")

    continued = await live_claude.complete(
        request(CLAUDE, QUESTION, prefill, max_output_tokens=16, timeout_s=60.0)
    )

    assert counted is not None and counted > 0
    assert not continued.text.startswith(" ")  # the trailing space was the prefix's


async def test_gpt_4o_mini_answers_and_streams(live_gpt: OpenAIProvider) -> None:
    req = request(GPT_4O_MINI, QUESTION, max_output_tokens=16, temperature=0.0, timeout_s=60.0)

    completion = await live_gpt.complete(req)
    streamed = await collect(live_gpt.stream(req))

    assert "pong" in completion.text.lower()
    assert "pong" in streamed.text.lower()
    assert reported(streamed.end.usage).output_tokens > 0


async def test_o3_mini_accepts_its_parameters(live_gpt: OpenAIProvider) -> None:
    req = request(
        O3_MINI,
        Message(Role.SYSTEM, "Answer tersely."),
        QUESTION,
        max_output_tokens=512,
        temperature=0.5,  # never sent to o-series models
        reasoning_effort=ReasoningEffort.LOW,
        timeout_s=60.0,
    )

    streamed = await collect(live_gpt.stream(req))

    assert streamed.end.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


async def test_a_wrong_key_is_an_authentication_failure() -> None:
    _key("ANTHROPIC_API_KEY")  # only worth running where the real API is reachable
    wrong = "sk-ant-api03-" + "x" * 40
    provider = AnthropicProvider("anthropic", _live(wrong))
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            await provider.complete(request(CLAUDE, QUESTION, max_output_tokens=8))
    finally:
        await provider.aclose()

    assert wrong not in caught.value.message
