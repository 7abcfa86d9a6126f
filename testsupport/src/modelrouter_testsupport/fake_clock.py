"""A clock that moves only when a test says so, for the resilience layer's `Clock` and
`Sleep` seams (breaker cool-downs, retry waits): a test ends a 30 s cool-down at once
instead of sleeping through it."""

from __future__ import annotations

import asyncio


class FakeClock:
    """A monotonic clock that only moves when told; `sleep` advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it, yielding to the loop once."""
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
