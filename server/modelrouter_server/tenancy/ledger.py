"""The quota and spend ledger: one small interface, a SQLite and a Redis implementation.

    reservation = await ledger.reserve(tenant, limits, tokens=bound, cost_usd=bound_usd, ...)
    ... the provider call ...
    await ledger.settle(reservation, tokens=real_tokens, cost_usd=real_usd)

`reserve` checks every limit and takes what the request may use in one atomic step, or takes
nothing and raises `QuotaExceeded`. A reservation holds the request's upper bound against the
budgets until `settle` replaces it with the real spend, so concurrent requests together
cannot overspend a budget by more than the bound of one request (only a request whose real
cost exceeds its bound could).

Rates use GCRA (the generic cell rate algorithm): one "theoretical arrival time" per tenant
and rate, so N per minute admits a burst of N and then one every 60/N seconds, with an exact
wait to report. Streams and budget holds are leases with an expiry, so a crashed process does
not hold a slot or a budget for ever.

Every time is wall-clock seconds (`clock`), shared by the processes and replicas that share a
ledger; days and months are UTC calendar periods.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from modelrouter_server.config.security import TenantConfig
from modelrouter_server.errors import QuotaExceeded

WINDOW_S = 60.0
"""The period of the per-minute rates."""

Clock = Callable[[], float]

BUDGET_EPSILON_USD = 1e-9
"""Sums of float dollars drift (30 x 0.01 is a hair over 0.30); a budget is exceeded only
beyond this."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's limits; None: unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_streams: int | None = None
    budget_usd_per_day: float | None = None
    budget_usd_per_month: float | None = None

    @classmethod
    def of(cls, tenant: TenantConfig | None) -> Limits:
        if tenant is None:
            return cls()
        return cls(
            requests_per_minute=tenant.requests_per_minute,
            tokens_per_minute=tenant.tokens_per_minute,
            max_concurrent_streams=tenant.max_concurrent_streams,
            budget_usd_per_day=tenant.budget_usd_per_day,
            budget_usd_per_month=tenant.budget_usd_per_month,
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one admitted request holds until it is settled."""

    tenant: str
    id: str
    tokens: int
    cost_usd: float
    stream: bool
    day: str
    month: str
    tokens_per_minute: int | None
    """The TPM limit at reservation time: settling returns the unused part of the bound."""


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    period: str
    """`2026-12-01` (a UTC day) or `2026-12` (a UTC month)."""
    cost_usd: float = 0.0
    tokens: int = 0
    requests: int = 0
    held_usd: float = 0.0
    """Upper bounds of requests in flight, not yet settled."""


@dataclass(frozen=True, slots=True)
class TenantUsage:
    tenant: str
    day: PeriodUsage
    month: PeriodUsage
    streams: int
    """Streams open now."""


class Ledger(Protocol):
    """Request rates, token rates, concurrent streams and spend, per tenant."""

    async def reserve(
        self,
        tenant: str,
        limits: Limits,
        *,
        tokens: int,
        cost_usd: float,
        stream: bool,
        lease_s: float,
    ) -> Reservation:
        """Admit one request whose use is at most `tokens` and `cost_usd`, or raise
        `QuotaExceeded` having taken nothing. `lease_s`: how long the hold and the stream
        slot last if `settle` never comes (a crashed process)."""
        ...

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Replace the reservation's bound with the real use (0 for a request that failed
        before any provider answered) and free its stream slot."""
        ...

    async def usage(self, tenant: str) -> TenantUsage:
        """Spend and counts of the current UTC day and month."""
        ...

    async def aclose(self) -> None: ...


# -- what both implementations share ----------------------------------------------------


def new_reservation_id() -> str:
    return uuid.uuid4().hex


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def seconds_to_next_day(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86400
    return max(midnight - now, 0.0)


def seconds_to_next_month(now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
    return max(start + days * 86400 - now, 0.0)


def gcra(tat: float, now: float, cost: float, per_minute: int) -> tuple[float, float]:
    """(the new theoretical arrival time, 0) when `cost` units fit now, else (the old one,
    the seconds to wait). A cost larger than the whole minute's allowance never fits."""
    interval = WINDOW_S / per_minute
    new_tat = max(tat, now) + cost * interval
    over = new_tat - now - WINDOW_S
    if over > 1e-9:
        return tat, over
    return new_tat, 0.0


def rate_refusal(
    tenant: str, limit: str, per_minute: int, cost: float, wait_s: float
) -> QuotaExceeded:
    if cost > per_minute:
        return QuotaExceeded(
            tenant,
            limit,
            f"this request needs {cost:g}, more than the limit of {per_minute} per minute",
            None,
        )
    return QuotaExceeded(tenant, limit, f"limit of {per_minute} per minute reached", wait_s)


def budget_refusal(
    tenant: str, limit: str, budget: float, used: float, cost: float, wait_s: float
) -> QuotaExceeded:
    if cost > budget:
        return QuotaExceeded(
            tenant,
            limit,
            f"this request may cost up to ${cost:.6f}, more than the budget of ${budget:g}",
            None,
        )
    return QuotaExceeded(
        tenant,
        limit,
        f"budget of ${budget:g} would be exceeded (${used:.6f} spent or held, "
        f"this request may cost up to ${cost:.6f})",
        wait_s,
    )
