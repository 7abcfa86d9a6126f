"""The ledger contract, run against SQLite and a real redis-server."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from modelrouter_server.tenancy import Ledger, Limits, QuotaExceeded, Reservation, SQLiteLedger

from tenancy.conftest import FakeClock

LEASE_S = 600.0


async def _reserve(
    ledger: Ledger,
    limits: Limits,
    *,
    tokens: int = 100,
    cost: float = 0.0,
    stream: bool = False,
    tenant: str = "alice",
) -> Reservation:
    return await ledger.reserve(
        tenant, limits, tokens=tokens, cost_usd=cost, stream=stream, lease_s=LEASE_S
    )


async def test_requests_per_minute_admits_the_limit_then_says_when(
    ledger: Ledger, clock: FakeClock
) -> None:
    limits = Limits(requests_per_minute=5)
    for _ in range(5):
        await _reserve(ledger, limits)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits)
    assert refused.value.limit == "requests_per_minute"
    # One request every 12 s refills: the next one is admitted 12 s later, not before.
    assert refused.value.retry_after_s == pytest.approx(12.0, abs=0.01)
    clock.advance(11.9)
    with pytest.raises(QuotaExceeded):
        await _reserve(ledger, limits)
    clock.advance(0.11)
    await _reserve(ledger, limits)


async def test_tenants_have_separate_limits(ledger: Ledger) -> None:
    limits = Limits(requests_per_minute=1)
    await _reserve(ledger, limits, tenant="alice")
    await _reserve(ledger, limits, tenant="bob")
    with pytest.raises(QuotaExceeded):
        await _reserve(ledger, limits, tenant="alice")


async def test_tokens_per_minute_charges_the_bound_then_the_real_count(
    ledger: Ledger, clock: FakeClock
) -> None:
    limits = Limits(tokens_per_minute=1000)
    first = await _reserve(ledger, limits, tokens=800)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits, tokens=300)
    assert refused.value.limit == "tokens_per_minute"
    # The call used 100 of its 800: the other 700 go back.
    await ledger.settle(first, tokens=100, cost_usd=0.0)
    await _reserve(ledger, limits, tokens=300)
    await _reserve(ledger, limits, tokens=600)
    with pytest.raises(QuotaExceeded):
        await _reserve(ledger, limits, tokens=50)


async def test_a_request_larger_than_the_minute_never_fits(ledger: Ledger) -> None:
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, Limits(tokens_per_minute=1000), tokens=1001)
    assert refused.value.retry_after_s is None
    assert "more than the limit" in refused.value.description


async def test_concurrent_streams_are_slots_freed_by_settle_or_lease_expiry(
    ledger: Ledger, clock: FakeClock
) -> None:
    limits = Limits(max_concurrent_streams=2)
    first = await _reserve(ledger, limits, stream=True)
    await _reserve(ledger, limits, stream=True)
    await _reserve(ledger, limits, stream=False)  # unary calls take no slot
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits, stream=True)
    assert refused.value.limit == "max_concurrent_streams"
    assert (await ledger.usage("alice")).streams == 2
    await ledger.settle(first, tokens=0, cost_usd=0.0)
    await _reserve(ledger, limits, stream=True)
    # A process that died holding both slots: they free when their lease ends.
    clock.advance(LEASE_S + 1)
    await _reserve(ledger, limits, stream=True)
    await _reserve(ledger, limits, stream=True)


async def test_budget_holds_the_bound_and_settles_the_real_cost(
    ledger: Ledger, clock: FakeClock
) -> None:
    limits = Limits(budget_usd_per_day=1.0)
    held = await _reserve(ledger, limits, cost=0.6)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits, cost=0.6)
    assert refused.value.limit == "budget_usd_per_day"
    # Only a hold of a request in flight stands in the way: come back soon.
    assert refused.value.retry_after_s == pytest.approx(1.0)
    usage = await ledger.usage("alice")
    assert usage.day.held_usd == pytest.approx(0.6)
    await ledger.settle(held, tokens=500, cost_usd=0.25)
    usage = await ledger.usage("alice")
    assert usage.day.cost_usd == pytest.approx(0.25)
    assert (usage.day.tokens, usage.day.requests) == (500, 1)
    assert usage.day.held_usd == 0
    assert usage.month.cost_usd == pytest.approx(0.25)
    second = await _reserve(ledger, limits, cost=0.6)
    await ledger.settle(second, tokens=1, cost_usd=0.6)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits, cost=0.2)
    # Spent, not held: the day's budget is gone until midnight UTC (12 h away).
    assert refused.value.retry_after_s == pytest.approx(12 * 3600, abs=1)
    clock.advance(12 * 3600)
    await _reserve(ledger, limits, cost=0.2)


async def test_month_budget_spans_days(ledger: Ledger, clock: FakeClock) -> None:
    limits = Limits(budget_usd_per_month=1.0)
    spent = await _reserve(ledger, limits, cost=0.9)
    await ledger.settle(spent, tokens=1, cost_usd=0.9)
    clock.advance(86400)
    with pytest.raises(QuotaExceeded) as refused:
        await _reserve(ledger, limits, cost=0.2)
    assert refused.value.limit == "budget_usd_per_month"
    assert refused.value.retry_after_s == pytest.approx(29.5 * 86400, abs=1)


async def test_a_refusal_takes_nothing(ledger: Ledger) -> None:
    limits = Limits(requests_per_minute=10, budget_usd_per_day=0.5)
    for _ in range(3):
        with pytest.raises(QuotaExceeded):
            await _reserve(ledger, limits, cost=0.6)
    # Three refusals took no requests from the ten.
    for _ in range(10):
        await _reserve(ledger, limits, cost=0.0)


async def test_fifty_concurrent_reservations_do_not_overspend(ledger: Ledger) -> None:
    """50 requests race for a $0.10 budget, each bounded at $0.01 and really costing
    between half and all of it; the spend may not exceed the budget by more than one bound
    (with bounds that hold, it may not exceed it at all)."""
    budget, bound = 0.10, 0.01
    limits = Limits(budget_usd_per_day=budget)
    rng = random.Random(9)
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        try:
            held = await _reserve(ledger, limits, cost=bound)
        except QuotaExceeded:
            return
        admitted += 1
        await asyncio.sleep(0)  # let the others race while this one is "in flight"
        await ledger.settle(held, tokens=1, cost_usd=bound * rng.uniform(0.5, 1.0))

    await asyncio.gather(*(one() for _ in range(50)))
    spent = (await ledger.usage("alice")).day.cost_usd
    overspend = spent - budget
    print(
        f"\n50 concurrent reservations: admitted {admitted}, spent ${spent:.6f}, "
        f"budget ${budget}, overspend ${max(overspend, 0.0):.6f}"
    )
    assert admitted >= 10
    assert overspend <= 1e-9


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_share_the_limits(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two worker processes race 40 attempts each against limits of 30: exactly 30 get in,
    however the attempts interleave."""
    where = str(tmp_path / "ledger.db")
    if kind == "redis":
        where = request.getfixturevalue("redis_server").url
    prefix = f"procs-{uuid.uuid4().hex[:8]}:"
    command = [sys.executable, "-m", "tenancy.ledger_worker", kind, where, prefix, "40"]
    here = Path(__file__).resolve().parents[1]
    workers = [
        subprocess.Popen(command, cwd=here, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    admitted = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sum(admitted) == 30, admitted


async def test_sqlite_spend_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "ledger.db"
    first = await SQLiteLedger.open(path, clock=clock)
    held = await first.reserve(
        "alice", Limits(), tokens=10, cost_usd=0.5, stream=False, lease_s=LEASE_S
    )
    await first.settle(held, tokens=7, cost_usd=0.25)
    await first.aclose()
    again = await SQLiteLedger.open(path, clock=clock)
    try:
        usage = await again.usage("alice")
        assert (usage.day.cost_usd, usage.day.tokens, usage.day.requests) == (0.25, 7, 1)
        with pytest.raises(QuotaExceeded):
            await again.reserve(
                "alice",
                Limits(budget_usd_per_day=0.5),
                tokens=1,
                cost_usd=0.3,
                stream=False,
                lease_s=LEASE_S,
            )
    finally:
        await again.aclose()


async def test_a_tenant_without_limits_has_its_holds_streams_and_spend_counted(
    ledger: Ledger,
) -> None:
    """Nothing is checked for it, but its use is still the ledger's to report (SQLite keeps
    such holds in memory and writes such spend in batches; `usage` sees both)."""
    streaming = await _reserve(ledger, Limits(), cost=0.5, stream=True, tenant="open")
    unary = await _reserve(ledger, Limits(), cost=0.25, tenant="open")
    usage = await ledger.usage("open")
    assert (usage.streams, usage.day.held_usd, usage.month.held_usd) == (1, 0.75, 0.75)
    await ledger.settle(streaming, tokens=30, cost_usd=0.125)
    await ledger.settle(unary, tokens=10, cost_usd=0.0625)
    usage = await ledger.usage("open")
    assert (usage.streams, usage.day.held_usd) == (0, 0.0)
    assert (usage.day.requests, usage.day.tokens, usage.day.cost_usd) == (2, 40, 0.1875)
    assert (usage.month.requests, usage.month.tokens) == (2, 40)
    assert (await ledger.usage("alice")).day.requests == 0


async def test_sqlite_writes_spend_of_tenants_without_limits_for_other_processes(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Another worker on the file sees it once written: at the latest after `FLUSH_S`,
    here at once by `flush` (what `usage` and `aclose` do first)."""
    writer = await SQLiteLedger.open(tmp_path / "ledger.db", clock=clock)
    reader = await SQLiteLedger.open(tmp_path / "ledger.db", clock=clock)
    try:
        for _ in range(3):
            held = await _reserve(writer, Limits(), cost=0.5)
            await writer.settle(held, tokens=7, cost_usd=0.25)
        await writer.flush()
        day = (await reader.usage("alice")).day
        assert (day.requests, day.tokens, day.cost_usd) == (3, 21, 0.75)
        # A budget on the same file counts that spend.
        with pytest.raises(QuotaExceeded):
            await _reserve(reader, Limits(budget_usd_per_day=1.0), cost=0.3)
    finally:
        await writer.aclose()
        await reader.aclose()
