"""Spend of tenants without limits, summed in memory until the ledger writes it in one go.

A tenant without limits has nothing to check, so its requests need not wait on the ledger
file at all: the ledger keeps their holds in memory and adds their settled use here, one
row per (tenant, period), and writes the rows in one transaction a moment later (see
`SQLiteLedger`). Tenants with limits never pass through here: their spend is what budgets
are checked against, so it is written before the request ends.
"""

from __future__ import annotations

from dataclasses import dataclass

SpendRow = tuple[str, str, float, int, int]
"""(tenant, period key such as `d:2026-12-01` or `m:2026-12`, cost_usd, tokens, requests)."""


@dataclass(slots=True)
class _Sum:
    cost_usd: float = 0.0
    tokens: int = 0
    requests: int = 0


class SpendBatch:
    """Settled use not yet written, summed per tenant and period."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str], _Sum] = {}
        self.requests = 0
        """Requests settled since the last `take`: how full the batch is."""

    def add(self, tenant: str, periods: tuple[str, ...], tokens: int, cost_usd: float) -> None:
        for period in periods:
            total = self._sums.get((tenant, period))
            if total is None:
                total = self._sums[(tenant, period)] = _Sum()
            total.cost_usd += cost_usd
            total.tokens += tokens
            total.requests += 1
        self.requests += 1

    def take(self) -> list[SpendRow]:
        """Every sum, leaving the batch empty."""
        rows = [(t, p, s.cost_usd, s.tokens, s.requests) for (t, p), s in self._sums.items()]
        self._sums.clear()
        self.requests = 0
        return rows

    def restore(self, rows: list[SpendRow]) -> None:
        """Put back rows whose write failed, so the next write carries them."""
        for tenant, period, cost_usd, tokens, requests in rows:
            total = self._sums.get((tenant, period))
            if total is None:
                total = self._sums[(tenant, period)] = _Sum()
            total.cost_usd += cost_usd
            total.tokens += tokens
            total.requests += requests
            if period.startswith("d:"):  # each request has one day row and one month row
                self.requests += requests

    def __bool__(self) -> bool:
        return bool(self._sums)
