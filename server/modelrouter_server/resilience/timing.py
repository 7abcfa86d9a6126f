"""The clock and sleep the resilience layer runs on, passed in so tests control time.

Production code uses `time.monotonic` and `asyncio.sleep`; a test passes a fake clock and a
sleep that advances it. Nothing here is a global switch: each object receives its own pair.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale; deadlines are expressed on the same scale."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given number of seconds."""

MONOTONIC: Clock = time.monotonic
ASYNCIO_SLEEP: Sleep = asyncio.sleep


def remaining_s(deadline: float | None, clock: Clock) -> float | None:
    """Seconds left before `deadline` (may be <= 0), or None when there is no deadline."""
    return None if deadline is None else deadline - clock()


def bounded(limit_s: float, remaining: float | None) -> tuple[float, bool]:
    """The wait to allow for one step: `limit_s`, or less when the deadline is nearer.

    Returns the wait and whether the deadline (not `limit_s`) is what bounds it, so a
    timeout can be told apart: a slow provider versus the caller running out of time.
    """
    if remaining is not None and remaining <= limit_s:
        return max(remaining, 0.0), True
    return limit_s, False
