"""`pricing.cost_usd` against figures worked out by hand from the published prices, so a
wrong rate or a cache token billed twice shows up as a wrong number."""

from __future__ import annotations

import pytest
from modelrouter_server.config.schema import Pricing
from modelrouter_server.domain import Usage
from modelrouter_server.pricing import cost_usd, estimate_cost_usd

# claude-3-7-sonnet, USD per million tokens.
SONNET = Pricing(
    input_per_mtok=3.0, output_per_mtok=15.0, cache_read_per_mtok=0.30, cache_write_per_mtok=3.75
)


def test_input_and_output_at_their_rates() -> None:
    # 1,000 x $3 + 500 x $15 = $10,500 per million = $0.0105
    assert cost_usd(SONNET, Usage(input_tokens=1_000, output_tokens=500)) == pytest.approx(0.0105)


def test_cached_input_is_billed_at_the_cache_rates_not_the_input_rate() -> None:
    # input_tokens counts every input token, cached or not: 10,000 = 2,000 uncached
    # + 6,000 read from the cache + 2,000 written to it.
    usage = Usage(
        input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=2_000
    )
    # 2,000 x $3 + 6,000 x $0.30 + 2,000 x $3.75 + 1,000 x $15
    # = 6,000 + 1,800 + 7,500 + 15,000 = $30,300 per million
    assert cost_usd(SONNET, usage) == pytest.approx(0.0303)


def test_cache_counts_above_the_input_never_make_a_negative_input_charge() -> None:
    usage = Usage(input_tokens=100, cache_read_tokens=1_000)
    # Uncached input clamps at 0: only the 1,000 cache reads at $0.30.
    assert cost_usd(SONNET, usage) == pytest.approx(0.0003)


def test_reasoning_tokens_are_part_of_the_output_not_billed_again() -> None:
    # o3-mini: $1.10 in, $4.40 out; 300 output tokens of which 200 were reasoning.
    o3_mini = Pricing(input_per_mtok=1.10, output_per_mtok=4.40, cache_read_per_mtok=0.55)
    usage = Usage(input_tokens=1_000, output_tokens=300, reasoning_tokens=200)
    # 1,000 x $1.10 + 300 x $4.40 = 1,100 + 1,320 = $2,420 per million
    assert cost_usd(o3_mini, usage) == pytest.approx(0.00242)


def test_free_models_cost_nothing() -> None:
    assert cost_usd(Pricing(), Usage(input_tokens=5_000, output_tokens=5_000)) == 0.0


def test_estimate_assumes_the_whole_output_budget_is_spent() -> None:
    # 2,000 x $3 + 4,000 x $15 = 6,000 + 60,000 = $66,000 per million
    assert estimate_cost_usd(SONNET, 2_000, 4_000) == pytest.approx(0.066)
