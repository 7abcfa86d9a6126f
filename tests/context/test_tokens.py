"""Token counting: exact tiktoken counts, Claude via count_tokens or the estimate, caching."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
from modelrouter_server.config.schema import RouterConfig, Tokenizer
from modelrouter_server.context import CountMethod, TokenCounter
from modelrouter_server.context.claude_estimate import base_tokens
from modelrouter_server.context.vocabulary import shipped_encoding
from modelrouter_server.domain import Message, ProviderRequest, Role, Usage
from modelrouter_server.emulator import Emulator
from modelrouter_server.errors import ModelNotFound
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.factory import build_providers

from .conftest import CLAUDE, GPT, GPT4, SMALL_CLAUDE, free_port

CONVERSATION = (
    Message(Role.SYSTEM, "You are a terse assistant. Answer in one sentence."),
    Message(Role.USER, "What is the capital of France?"),
    Message(Role.ASSISTANT, "Paris is the capital of France."),
    Message(Role.USER, "And how many people live there? Give me 2024 figures, please."),
)

PROSE = (
    "The committee met on Tuesday to review the quarterly budget. Marketing asked for an "
    "additional twelve thousand dollars to cover the spring campaign, while engineering "
    "argued that the build servers must be replaced before the summer release. "
)


def cookbook_count(tokenizer: Tokenizer, messages: tuple[Message, ...]) -> int:
    """The OpenAI cookbook's formula, computed here with tiktoken itself."""
    encoding = shipped_encoding(tokenizer)
    total = 3
    for message in messages:
        total += (
            3 + len(encoding.encode(message.role.value)) + len(encoding.encode(message.content))
        )
    return total


@pytest.fixture
def offline_counter(config: RouterConfig) -> TokenCounter:
    """A counter with no providers at all: Claude can only be estimated."""
    return TokenCounter(config, {})


def test_hello_world_is_nine_tokens_on_gpt_4o_mini(offline_counter: TokenCounter) -> None:
    # 3 framing + 1 ("user") + 2 ("hello world") + 3 reply priming.
    assert offline_counter.count_local(GPT, [Message(Role.USER, "hello world")]) == 9


@pytest.mark.parametrize(
    ("model", "tokenizer"), [(GPT, Tokenizer.O200K_BASE), (GPT4, Tokenizer.CL100K_BASE)]
)
def test_exact_counts_match_tiktoken(
    offline_counter: TokenCounter, model: str, tokenizer: Tokenizer
) -> None:
    assert offline_counter.count_local(model, CONVERSATION) == cookbook_count(
        tokenizer, CONVERSATION
    )


def test_per_message_counts_sum_to_the_total(offline_counter: TokenCounter) -> None:
    per_message = offline_counter.message_tokens(GPT, CONVERSATION)
    assert len(per_message) == len(CONVERSATION)
    assert sum(per_message) + 3 == offline_counter.count_local(GPT, CONVERSATION)


def test_aliases_resolve_and_unknown_models_are_refused(offline_counter: TokenCounter) -> None:
    assert offline_counter.count_local("gpt-4o-mini", CONVERSATION) == (
        offline_counter.count_local(GPT, CONVERSATION)
    )
    with pytest.raises(ModelNotFound, match="no-such-model"):
        offline_counter.count_local("no-such-model", CONVERSATION)


async def test_openai_count_is_exact_local(offline_counter: TokenCounter) -> None:
    counted = await offline_counter.count(GPT, CONVERSATION)
    assert counted.method is CountMethod.EXACT_LOCAL
    assert counted.tokens == cookbook_count(Tokenizer.O200K_BASE, CONVERSATION)


async def test_count_agrees_with_the_prompt_tokens_the_api_bills(
    config: RouterConfig, providers: dict[str, Provider]
) -> None:
    """The emulator bills OpenAI prompt tokens the way the real API does for gpt-4o-mini."""
    counter = TokenCounter(config, providers)
    completion = await providers["openai"].complete(
        ProviderRequest(model=GPT, messages=CONVERSATION, max_output_tokens=16)
    )
    assert reported(completion.usage).input_tokens == counter.count_local(GPT, CONVERSATION)


def test_cache_makes_a_growing_conversation_incremental(offline_counter: TokenCounter) -> None:
    history = [Message(Role.USER if i % 2 == 0 else Role.ASSISTANT, f"turn {i}") for i in range(40)]
    offline_counter.count_local(GPT, history)
    first = offline_counter.cache_stats()
    assert first.misses == 40
    assert first.entries == 40

    history.append(Message(Role.USER, "one more"))
    offline_counter.count_local(GPT, history)
    second = offline_counter.cache_stats()
    assert second.misses == 41  # only the new message was tokenized
    assert second.hits == first.hits + 40


def test_same_content_in_another_role_is_counted_separately(
    offline_counter: TokenCounter,
) -> None:
    offline_counter.count_local(GPT, [Message(Role.USER, "same text")])
    offline_counter.count_local(GPT, [Message(Role.ASSISTANT, "same text")])
    assert offline_counter.cache_stats().entries == 2


async def test_large_messages_are_counted_off_the_event_loop(config: RouterConfig) -> None:
    counter = TokenCounter(config, {}, offload_chars=1_000)
    big = Message(Role.USER, PROSE * 50)
    counted = await counter.count(GPT, [big])
    assert counted.tokens == cookbook_count(Tokenizer.O200K_BASE, (big,))
    assert counter.cache_stats().entries == 1


async def test_an_answer_is_counted_exactly_for_tiktoken_models_and_estimated_for_claude(
    config: RouterConfig,
) -> None:
    # offload_chars=1_000: the long answer goes through the worker thread, the short not.
    counter = TokenCounter(config, {}, offload_chars=1_000)
    encoding = shipped_encoding(Tokenizer.O200K_BASE)
    for text in (" Hello there.", PROSE * 50):
        assert await counter.count_output(GPT, text) == len(encoding.encode_ordinary(text))
        assert counter.local_method(GPT) is CountMethod.EXACT_LOCAL
    claude = await counter.count_output(CLAUDE, PROSE * 50)
    assert claude == counter.claude_estimate.scale(base_tokens(PROSE * 50))
    assert counter.local_method(CLAUDE) is CountMethod.ESTIMATE
    assert await counter.count_output(GPT, "") == 0


async def test_claude_count_comes_from_count_tokens(
    config: RouterConfig, providers: dict[str, Provider], emulator: Emulator
) -> None:
    counter = TokenCounter(config, providers)
    direct = await providers["anthropic"].count_tokens(CLAUDE, CONVERSATION)
    counted = await counter.count(CLAUDE, CONVERSATION)
    assert counted.method is CountMethod.PROVIDER
    assert counted.tokens == direct


async def test_claude_counts_are_cached_by_content(
    config: RouterConfig, providers: dict[str, Provider], emulator: Emulator
) -> None:
    counter = TokenCounter(config, providers)
    await counter.count(CLAUDE, CONVERSATION)
    await counter.count("sonnet", CONVERSATION)
    calls = [r for r in emulator.requests if r.path.endswith("/count_tokens")]
    assert len(calls) == 1

    await counter.count(CLAUDE, (*CONVERSATION, Message(Role.ASSISTANT, "About two million.")))
    calls = [r for r in emulator.requests if r.path.endswith("/count_tokens")]
    assert len(calls) == 2


@pytest.fixture
async def unreachable_providers(config: RouterConfig) -> AsyncIterator[dict[str, Provider]]:
    """Providers pointed at a port where nothing listens."""
    closed = f"http://127.0.0.1:{free_port()}"
    built = build_providers(config, env={}, emulator_base_url=closed)
    yield built
    for provider in built.values():
        await provider.aclose()


async def test_claude_falls_back_to_the_estimate_when_unreachable(
    config: RouterConfig, unreachable_providers: dict[str, Provider]
) -> None:
    counter = TokenCounter(config, unreachable_providers)
    counted = await counter.count(CLAUDE, CONVERSATION)
    assert counted.method is CountMethod.ESTIMATE
    assert counted.tokens == counter.count_local(CLAUDE, CONVERSATION)


def test_claude_estimate_applies_the_ratio_and_margin(offline_counter: TokenCounter) -> None:
    encoding = shipped_encoding(Tokenizer.CL100K_BASE)
    ratio = offline_counter.claude_estimate.ratio
    expected = 3  # reply priming
    for message in CONVERSATION:
        by_rule = math.ceil(len(message.content.encode()) / 3.5)
        base = max(by_rule, len(encoding.encode(message.content)))
        expected += math.ceil(base * ratio * 1.1) + 3
    assert offline_counter.count_local(CLAUDE, CONVERSATION) == expected


def test_claude_estimate_counts_scripts_the_character_rule_undercounts(
    offline_counter: TokenCounter,
) -> None:
    text = "東京都は日本の首都であり、世界有数の大都市です。" * 10
    by_rule = math.ceil(len(text.encode()) / 3.5)
    by_bpe = len(shipped_encoding(Tokenizer.CL100K_BASE).encode(text))
    assert by_bpe > by_rule
    assert offline_counter.count_local(CLAUDE, [Message(Role.USER, text)]) >= by_bpe


async def test_claude_estimate_is_not_below_the_exact_count(
    config: RouterConfig, providers: dict[str, Provider]
) -> None:
    """Before and after calibration the estimate errs high, so window checks err on the
    safe side (the emulator counts like Anthropic's 3.5-characters-per-token rule)."""
    counter = TokenCounter(config, providers)
    messages = [Message(Role.USER, PROSE * 20), Message(Role.ASSISTANT, PROSE * 5)]
    uncalibrated = counter.count_local(CLAUDE, messages)
    exact = await counter.count(CLAUDE, messages)
    assert exact.method is CountMethod.PROVIDER
    assert uncalibrated >= exact.tokens

    for i in range(10):
        await counter.count(CLAUDE, [Message(Role.USER, f"sample {i}: " + PROSE * 8)])
    fresh = [Message(Role.USER, "unseen: " + PROSE * 12)]
    assert counter.count_local(CLAUDE, fresh) >= (await counter.count(CLAUDE, fresh)).tokens


async def test_claude_estimate_calibrates_from_exact_counts(
    config: RouterConfig, providers: dict[str, Provider]
) -> None:
    counter = TokenCounter(config, providers)
    prior = counter.claude_estimate.ratio
    for i in range(10):
        await counter.count(SMALL_CLAUDE, [Message(Role.USER, f"{i} " + PROSE * 10)])
    assert counter.claude_estimate.observations == 10
    learned = counter.claude_estimate.ratio
    assert learned != prior
    # The learned ratio predicts the provider's count closely (before the margin).
    sample = [Message(Role.USER, "fresh text " + PROSE * 10)]
    exact = await counter.count(SMALL_CLAUDE, sample)
    unscaled = counter.count_local(SMALL_CLAUDE, sample) / 1.1
    assert abs(unscaled - exact.tokens) / exact.tokens < 0.05


async def test_an_unreachable_count_endpoint_is_not_retried_during_the_cooldown(
    config: RouterConfig,
) -> None:
    connections = 0

    async def refuse(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    built = build_providers(config, env={}, emulator_base_url=f"http://127.0.0.1:{port}")
    now = 1_000.0
    counter = TokenCounter(config, built, provider_cooldown_s=30.0, clock=lambda: now)
    try:
        first = await counter.count(CLAUDE, CONVERSATION)
        assert first.method is CountMethod.ESTIMATE
        tried = connections
        assert tried >= 1

        again = await counter.count(CLAUDE, CONVERSATION)
        assert again.method is CountMethod.ESTIMATE
        assert connections == tried  # still cooling down: not asked

        now += 31.0
        await counter.count(CLAUDE, CONVERSATION)
        assert connections > tried  # asked again once the cooldown passed
    finally:
        for provider in built.values():
            await provider.aclose()
        server.close()
        await server.wait_closed()


async def test_billed_input_tokens_calibrate_the_claude_estimate(
    config: RouterConfig, providers: dict[str, Provider]
) -> None:
    counter = TokenCounter(config, providers)
    messages = (Message(Role.USER, PROSE * 10),)
    completion = await providers["anthropic"].complete(
        ProviderRequest(model=CLAUDE, messages=messages, max_output_tokens=16)
    )
    counter.observe(CLAUDE, messages, reported(completion.usage).input_tokens)
    assert counter.claude_estimate.observations == 1
    counter.observe(GPT, messages, 1)  # exact models learn nothing
    assert counter.claude_estimate.observations == 1


def reported(usage: Usage | None) -> Usage:
    """The usage a provider sent, failing the test when it sent none."""
    assert usage is not None, "the provider reported no usage"
    return usage
