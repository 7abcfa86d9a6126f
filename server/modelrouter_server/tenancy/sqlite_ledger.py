"""The single-host ledger: one SQLite file shared by every worker process on the machine.

Each operation is one `BEGIN IMMEDIATE` transaction, which takes the file's write lock before
reading, so a check and the write that follows it are atomic across threads and processes;
a refused reservation rolls back and has taken nothing. The connection lives on one worker
thread so the event loop never waits on the disk. Spend is in the file, so it survives a
restart.

A tenant without limits has nothing to check, so its requests do not touch the file one by
one: its holds are kept in this process's memory (GetUsage on this process shows them) and
its settled use is summed in memory and written in one transaction at most `FLUSH_S` later,
or once `FLUSH_REQUESTS` requests have settled, before every `usage` read by this process,
and at `aclose`. What a crash can lose is that window: at most `FLUSH_S` of the use of
tenants without limits; a tenant with limits has every reservation and settlement written
before its request goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from modelrouter_server.errors import QuotaExceeded, StoreError
from modelrouter_server.sqlite_thread import close_on_thread, in_transaction, open_on_thread
from modelrouter_server.tenancy.ledger import (
    BUDGET_EPSILON_USD,
    WINDOW_S,
    Clock,
    Limits,
    PeriodUsage,
    Reservation,
    TenantUsage,
    budget_refusal,
    day_of,
    gcra,
    month_of,
    new_reservation_id,
    rate_refusal,
    seconds_to_next_day,
    seconds_to_next_month,
)
from modelrouter_server.tenancy.spend_batch import SpendBatch, SpendRow

T = TypeVar("T")

log = structlog.get_logger(__name__)

FLUSH_S = 1.0
"""The longest the use of a tenant without limits waits in memory before it is written."""
FLUSH_REQUESTS = 512
"""Settled requests (of tenants without limits) that are written at once, without waiting."""

_NO_LIMITS = Limits()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rates (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    tat REAL NOT NULL,
    PRIMARY KEY (tenant, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    stream INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_by_tenant ON holds (tenant, expires);
CREATE TABLE IF NOT EXISTS spend (
    tenant TEXT NOT NULL,
    period TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    PRIMARY KEY (tenant, period)
) WITHOUT ROWID;
"""

# When only holds of requests in flight stand in the way, they settle within seconds.
_HELD_RETRY_S = 1.0


def _rate_charges(
    db: sqlite3.Connection, tenant: str, limits: Limits, tokens: int, now: float
) -> dict[str, float]:
    """Each per-minute limit's new theoretical arrival time once this request is charged
    (GCRA); a rate refusal when one has no room now."""
    tats: dict[str, float] = {}
    for kind, per_minute, cost in (
        ("requests_per_minute", limits.requests_per_minute, 1),
        ("tokens_per_minute", limits.tokens_per_minute, tokens),
    ):
        if per_minute is None:
            continue
        row = db.execute(
            "SELECT tat FROM rates WHERE tenant = ? AND kind = ?", (tenant, kind)
        ).fetchone()
        tat, wait = gcra(float(row[0]) if row else 0.0, now, cost, per_minute)
        if wait:
            raise rate_refusal(tenant, kind, per_minute, cost, wait)
        tats[kind] = tat
    return tats


def _check_streams(db: sqlite3.Connection, tenant: str, limits: Limits) -> None:
    """`QuotaExceeded` when the tenant already holds its most concurrent streams."""
    if limits.max_concurrent_streams is None:
        return
    (open_streams,) = db.execute(
        "SELECT COUNT(*) FROM holds WHERE tenant = ? AND stream = 1", (tenant,)
    ).fetchone()
    if open_streams >= limits.max_concurrent_streams:
        raise QuotaExceeded(
            tenant,
            "max_concurrent_streams",
            f"{open_streams} streams open, the limit is {limits.max_concurrent_streams}",
            _HELD_RETRY_S,
        )


def _check_budgets(
    db: sqlite3.Connection, tenant: str, limits: Limits, cost_usd: float, now: float
) -> None:
    """A budget refusal when spend plus holds plus `cost_usd` passes a day or month budget."""
    day, month = day_of(now), month_of(now)
    for limit, budget, column, period, key, to_next in (
        ("budget_usd_per_day", limits.budget_usd_per_day, "day", day, "d:", seconds_to_next_day),
        ("budget_usd_per_month", limits.budget_usd_per_month, "month", month, "m:",
         seconds_to_next_month),
    ):  # fmt: skip
        if budget is None:
            continue
        spent_row = db.execute(
            "SELECT cost_usd FROM spend WHERE tenant = ? AND period = ?",
            (tenant, key + period),
        ).fetchone()
        spent = float(spent_row[0]) if spent_row else 0.0
        (held,) = db.execute(
            f"SELECT COALESCE(SUM(cost_usd), 0) FROM holds WHERE tenant = ? AND {column} = ?",
            (tenant, period),
        ).fetchone()
        if spent + float(held) + cost_usd > budget + BUDGET_EPSILON_USD:
            over = spent + cost_usd > budget + BUDGET_EPSILON_USD
            wait = to_next(now) if over else _HELD_RETRY_S
            raise budget_refusal(tenant, limit, budget, spent + float(held), cost_usd, wait)


class SQLiteLedger:
    """`Ledger` in one SQLite file. Open with `await SQLiteLedger.open(path)`."""

    def __init__(
        self, path: str, executor: ThreadPoolExecutor, db: sqlite3.Connection, clock: Clock
    ) -> None:
        """Use `open`."""
        self._path = path
        self._executor = executor
        self._db = db
        self._clock = clock
        self._closed = False
        self._local_holds: dict[str, Reservation] = {}
        """Reservations of tenants without limits, by id: in memory only."""
        self._batch = SpendBatch()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, path: str | Path, *, clock: Clock = time.time, busy_timeout_s: float = 10.0
    ) -> SQLiteLedger:
        where = str(path)
        executor, db = await open_on_thread(
            where,
            what="sqlite ledger",
            thread_name="sqlite-ledger",
            busy_timeout_s=busy_timeout_s,
            prepare=_create_schema,
        )
        return cls(where, executor, db, clock)

    async def _run(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"sqlite ledger {self._path}: closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._db)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite ledger {self._path}: {what} failed: {exc}") from exc

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
        reservation_id = new_reservation_id()
        if limits == _NO_LIMITS:
            return self._reserve_locally(reservation_id, tenant, tokens, cost_usd, stream)

        def work(db: sqlite3.Connection) -> Reservation:
            def admit() -> Reservation:
                now = self._clock()
                day, month = day_of(now), month_of(now)
                db.execute("DELETE FROM holds WHERE tenant = ? AND expires <= ?", (tenant, now))
                tats = _rate_charges(db, tenant, limits, tokens, now)
                if stream:
                    _check_streams(db, tenant, limits)
                _check_budgets(db, tenant, limits, cost_usd, now)
                for kind, tat in tats.items():
                    db.execute(
                        "INSERT INTO rates (tenant, kind, tat) VALUES (?, ?, ?)"
                        " ON CONFLICT (tenant, kind) DO UPDATE SET tat = excluded.tat",
                        (tenant, kind, tat),
                    )
                db.execute(
                    "INSERT INTO holds (id, tenant, cost_usd, day, month, stream, expires)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (reservation_id, tenant, cost_usd, day, month, int(stream), now + lease_s),
                )
                return Reservation(
                    tenant=tenant,
                    id=reservation_id,
                    tokens=tokens,
                    cost_usd=cost_usd,
                    stream=stream,
                    day=day,
                    month=month,
                    tokens_per_minute=limits.tokens_per_minute,
                )

            return in_transaction(db, admit, write=True)

        return await self._run("reserve", work)

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        r = reservation
        if self._local_holds.pop(r.id, None) is not None:
            self._batch.add(r.tenant, ("d:" + r.day, "m:" + r.month), tokens, cost_usd)
            if self._batch.requests >= FLUSH_REQUESTS:
                self._start_write()
            elif self._flush_timer is None:
                loop = asyncio.get_running_loop()
                self._flush_timer = loop.call_later(FLUSH_S, self._start_write)
            return

        def work(db: sqlite3.Connection) -> None:
            def record() -> None:
                db.execute("DELETE FROM holds WHERE id = ?", (r.id,))
                for period in ("d:" + r.day, "m:" + r.month):
                    db.execute(
                        "INSERT INTO spend (tenant, period, cost_usd, tokens, requests)"
                        " VALUES (?, ?, ?, ?, 1) ON CONFLICT (tenant, period) DO UPDATE SET"
                        " cost_usd = cost_usd + excluded.cost_usd,"
                        " tokens = tokens + excluded.tokens, requests = requests + 1",
                        (r.tenant, period, cost_usd, tokens),
                    )
                if r.tokens_per_minute is not None and tokens != r.tokens:
                    # The bound was charged at reserve; charge the real count instead.
                    shift = (tokens - r.tokens) * WINDOW_S / r.tokens_per_minute
                    db.execute(
                        "UPDATE rates SET tat = tat + ? WHERE tenant = ? AND kind = ?",
                        (shift, r.tenant, "tokens_per_minute"),
                    )

            in_transaction(db, record, write=True)

        await self._run("settle", work)

    async def usage(self, tenant: str) -> TenantUsage:
        await self.flush()
        usage = await self._read_usage(tenant)
        local = [r for r in self._local_holds.values() if r.tenant == tenant]
        if not local:
            return usage
        day, month = usage.day, usage.month
        day_held = sum(r.cost_usd for r in local if r.day == day.period)
        month_held = sum(r.cost_usd for r in local if r.month == month.period)
        return TenantUsage(
            tenant,
            dataclasses.replace(day, held_usd=day.held_usd + day_held),
            dataclasses.replace(month, held_usd=month.held_usd + month_held),
            usage.streams + sum(1 for r in local if r.stream),
        )

    async def _read_usage(self, tenant: str) -> TenantUsage:
        def work(db: sqlite3.Connection) -> TenantUsage:
            def read() -> TenantUsage:
                now = self._clock()
                day, month = day_of(now), month_of(now)
                periods = []
                for column, period, key in (("day", day, "d:"), ("month", month, "m:")):
                    row = db.execute(
                        "SELECT cost_usd, tokens, requests FROM spend"
                        " WHERE tenant = ? AND period = ?",
                        (tenant, key + period),
                    ).fetchone()
                    (held,) = db.execute(
                        f"SELECT COALESCE(SUM(cost_usd), 0) FROM holds WHERE tenant = ?"
                        f" AND {column} = ? AND expires > ?",
                        (tenant, period, now),
                    ).fetchone()
                    cost, used, requests = row if row else (0.0, 0, 0)
                    periods.append(
                        PeriodUsage(period, float(cost), int(used), int(requests), float(held))
                    )
                (streams,) = db.execute(
                    "SELECT COUNT(*) FROM holds WHERE tenant = ? AND stream = 1 AND expires > ?",
                    (tenant, now),
                ).fetchone()
                return TenantUsage(tenant, periods[0], periods[1], int(streams))

            return in_transaction(db, read, write=True)

        return await self._run("usage", work)

    async def aclose(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        except StoreError as exc:
            log.error("ledger_flush_failed", error=str(exc))
        self._closed = True
        await close_on_thread(self._executor, self._db)

    # -- tenants without limits ------------------------------------------------------------

    def _reserve_locally(
        self, reservation_id: str, tenant: str, tokens: int, cost_usd: float, stream: bool
    ) -> Reservation:
        """Nothing to check: the hold lives in memory, for `usage` and `settle`."""
        now = self._clock()
        reservation = Reservation(
            tenant, reservation_id, tokens, cost_usd, stream, day_of(now), month_of(now), None
        )
        self._local_holds[reservation_id] = reservation
        return reservation

    def _start_write(self) -> None:
        """Write the batch now, in the background (the next `flush` waits for it)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._batch or self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._write(self._batch.take()))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, rows: list[SpendRow]) -> None:
        def work(db: sqlite3.Connection) -> None:
            def record() -> None:
                db.executemany(
                    "INSERT INTO spend (tenant, period, cost_usd, tokens, requests)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, period) DO UPDATE SET"
                    " cost_usd = cost_usd + excluded.cost_usd,"
                    " tokens = tokens + excluded.tokens,"
                    " requests = requests + excluded.requests",
                    rows,
                )

            in_transaction(db, record, write=True)

        try:
            await self._run("write spend", work)
        except StoreError as exc:
            # Kept for the next write; only a process that never writes again loses it.
            self._batch.restore(rows)
            log.error("ledger_flush_failed", error=str(exc))
            if self._flush_timer is None and not self._closed:
                loop = asyncio.get_running_loop()
                self._flush_timer = loop.call_later(FLUSH_S, self._start_write)

    async def flush(self) -> None:
        """Write the use of tenants without limits settled so far (`StoreError` if it
        cannot be written; it is then kept for the next try)."""
        self._start_write()
        while self._writes:
            await asyncio.gather(*self._writes)
        if self._batch:
            raise StoreError(f"sqlite ledger {self._path}: cannot write the settled spend")


def _create_schema(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
