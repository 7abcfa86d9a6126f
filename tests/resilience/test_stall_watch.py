"""The per-leg stall timer: a stalled step expires, anything else passes untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from modelrouter_server.resilience.stall_watch import StallWatch, StepExpired


async def _tokens(
    count: int, stall: asyncio.Event, closed: asyncio.Event
) -> AsyncGenerator[int, None]:
    """`count` items at once, then a wait on `stall` (set only by the test); `closed` is set
    when the generator is closed or cancelled at that wait."""
    try:
        for i in range(count):
            yield i
        await stall.wait()
        yield count
    finally:
        closed.set()


async def test_steps_within_the_timeout_pass_and_a_stall_expires() -> None:
    stall, closed = asyncio.Event(), asyncio.Event()
    stream = _tokens(500, stall, closed)
    watch = StallWatch()
    got = [await watch.step(stream, 30.0) for _ in range(500)]
    assert got == list(range(500))

    with pytest.raises(StepExpired):
        await watch.step(stream, 0.05)

    # The cancellation reached the generator's await, as asyncio.timeout's does...
    await closed.wait()
    # ...and was taken back: the task is not left cancelled.
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    watch.close()


async def test_a_cancellation_from_outside_is_not_a_stall() -> None:
    stall, closed = asyncio.Event(), asyncio.Event()
    watch = StallWatch()
    entered = asyncio.Event()

    async def read() -> None:
        stream = _tokens(0, stall, closed)
        entered.set()
        await watch.step(stream, 30.0)

    task = asyncio.create_task(read())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()


async def test_a_shorter_limit_rearms_the_timer() -> None:
    stall, closed = asyncio.Event(), asyncio.Event()
    stream = _tokens(1, stall, closed)
    watch = StallWatch()
    await watch.step(stream, 3600.0)  # arms the timer an hour out
    with pytest.raises(StepExpired):
        await watch.step(stream, 0.05)  # a deadline-bounded limit must still fire
    watch.close()
