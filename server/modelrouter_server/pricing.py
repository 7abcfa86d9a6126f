"""Cost of a call at catalog prices."""

from __future__ import annotations

from modelrouter_server.config.schema import Pricing
from modelrouter_server.domain import Usage

_PER = 1_000_000


def cost_usd(pricing: Pricing, usage: Usage) -> float:
    # Cache reads and writes are billed at their own rates instead of the input rate.
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    return (
        uncached * pricing.input_per_mtok
        + usage.cache_read_tokens * pricing.cache_read_per_mtok
        + usage.cache_write_tokens * pricing.cache_write_per_mtok
        + usage.output_tokens * pricing.output_per_mtok
    ) / _PER


def estimate_cost_usd(pricing: Pricing, input_tokens: int, max_output_tokens: int) -> float:
    """Upper-bound estimate before the call: the whole output budget is assumed spent."""
    return cost_usd(pricing, Usage(input_tokens=input_tokens, output_tokens=max_output_tokens))
