"""Prompt caching through gRPC: a Claude conversation reads its stable prefix from the
cache on the next turn, the reply's usage says so, and the cost uses cache prices."""

from __future__ import annotations

import pytest
from modelrouter_client import AsyncModelRouterClient, pb

CLAUDE = "claude-3-7-sonnet-20250219"
GPT = "gpt-4o-mini-2024-07-18"
RUNBOOK = "You are the operations assistant. " + "Follow the runbook exactly. " * 400


def _cost(usage: pb.Usage, price_in: float, price_out: float, read: float, write: float) -> float:
    uncached = usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens
    return (
        uncached * price_in
        + usage.cache_read_tokens * read
        + usage.cache_write_tokens * write
        + usage.output_tokens * price_out
    ) / 1e6


@pytest.mark.parametrize(
    ("model", "prices"),
    [(CLAUDE, (3.0, 15.0, 0.30, 3.75)), (GPT, (0.15, 0.60, 0.075, 0.0))],
)
async def test_a_conversation_reads_its_prefix_from_the_cache_at_cache_prices(
    router: AsyncModelRouterClient, model: str, prices: tuple[float, float, float, float]
) -> None:
    conversation = await router.create_conversation(
        [pb.Message(role=pb.ROLE_SYSTEM, content=RUNBOOK)]
    )
    first = await router.generate("What is step one?", model=model, conversation_id=conversation.id)
    second = await router.generate("And step two?", model=model, conversation_id=conversation.id)

    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens >= 1024
    assert second.usage.cost_usd == pytest.approx(_cost(second.usage, *prices))
    full_price = _cost(
        pb.Usage(input_tokens=second.usage.input_tokens, output_tokens=second.usage.output_tokens),
        *prices,
    )
    assert second.usage.cost_usd < full_price


async def test_list_models_says_which_models_get_cache_breakpoints(
    router: AsyncModelRouterClient,
) -> None:
    models = {m.id: m.capabilities for m in await router.list_models()}

    assert models[CLAUDE].prompt_caching
    assert not models[GPT].prompt_caching  # OpenAI caches by itself
