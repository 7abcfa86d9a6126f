"""Fixtures for the ledger: a hand-moved clock, and each ledger implementation over it
(SQLite in a temporary file, Redis on a private redis-server and on a private three-node
Redis Cluster, with a per-test prefix)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from context.conftest import RedisClusterServers, RedisServer
from modelrouter_server.tenancy import Ledger, RedisLedger, SQLiteLedger

__all__ = ["FakeClock"]

# 2026-12-01 12:00:00 UTC: mid-day, mid-month, so no period ends during a test by accident.
NOON = 1_796_126_400.0


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    yield redis_server.url


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Ledger]:
    opened: Ledger
    if request.param == "sqlite":
        opened = await SQLiteLedger.open(tmp_path / "ledger.db", clock=clock)
    else:
        fixture = "redis_cluster" if request.param == "redis-cluster" else "redis_server"
        server: RedisServer | RedisClusterServers = request.getfixturevalue(fixture)
        prefix = f"test-{uuid.uuid4().hex[:8]}:"
        opened = await RedisLedger.open(server.url, key_prefix=prefix, clock=clock)
    yield opened
    await opened.aclose()
