"""Reading a stream one step ahead: what is there is taken at once, a wait is left
pending across the write, and only a step timed by its StallWatch may overlap one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from modelrouter_server.api.read_ahead import END, ReadAhead
from modelrouter_server.resilience.stall_watch import StallWatch, StepExpired
from modelrouter_server.stream_steps import timed_wait


async def _source(
    first: list[str], gate: asyncio.Event, then: list[str], closed: asyncio.Event | None = None
) -> AsyncGenerator[str, None]:
    """`first` at once, then a wait on `gate`, then `then`."""
    try:
        for item in first:
            yield item
        await gate.wait()
        for item in then:
            yield item
    finally:
        if closed is not None:
            closed.set()


async def _watched(stream: AsyncIterator[str], timeout_s: float) -> AsyncGenerator[str, None]:
    """Every step of `stream` under one StallWatch, as a stream leg reads its provider."""
    watch = StallWatch()
    try:
        while True:
            try:
                yield await watch.step(stream, timeout_s)
            except StopAsyncIteration:
                return
    finally:
        watch.close()


async def test_what_is_there_is_taken_at_once_and_a_wait_is_resumed() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_source(["a", "b", "c"], gate, ["d"]))
    assert await ahead.next() == "a"
    assert [ahead.take_ready(), ahead.take_ready()] == ["b", "c"]
    # "d" needs the gate: the step is left suspended, and nothing else is taken meanwhile.
    assert ahead.take_ready() is None
    assert ahead.take_ready() is None
    gate.set()
    assert await ahead.next() == "d"
    assert ahead.take_ready() is None
    assert await ahead.next() is END
    await ahead.close()


async def test_an_event_put_back_comes_next() -> None:
    gate = asyncio.Event()
    gate.set()
    ahead = ReadAhead(_source(["a", "b"], gate, ["c"]))
    assert await ahead.next() == "a"
    event = ahead.take_ready()
    assert event == "b"
    ahead.put_back(event)
    assert [await ahead.next(), await ahead.next(), await ahead.next()] == ["b", "c", END]


async def test_an_error_behind_the_text_is_raised_after_it() -> None:
    async def breaks() -> AsyncGenerator[str, None]:
        yield "a"
        raise ValueError("upstream broke")

    ahead = ReadAhead(breaks())
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None  # the text before the error still goes out first
    with pytest.raises(ValueError, match="upstream broke"):
        await ahead.next()


async def test_a_watched_read_overlaps_a_write_longer_than_its_timeout() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_watched(_source(["a"], gate, ["b"]), timeout_s=0.05))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    await ahead.before_write()  # a plain read: left pending
    loop = asyncio.get_running_loop()
    written = loop.create_future()
    # A write (a slow client) that outlasts the stall timeout: the paused watch must not
    # cancel it. Without the pause, the await below would raise CancelledError.
    loop.call_later(0.2, written.set_result, None)
    with ahead.writing():
        await written
    gate.set()
    assert await ahead.next() == "b"
    assert await ahead.next() is END


async def test_a_watched_read_still_stalls_after_the_write() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_watched(_source(["a"], gate, ["b"]), timeout_s=0.05))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    await ahead.before_write()
    with ahead.writing():
        pass
    # The upstream stays silent: the step expires as it would have without the write.
    with pytest.raises(StepExpired):
        await ahead.next()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_step_under_another_timer_is_finished_before_the_write() -> None:
    gate = asyncio.Event()

    async def drains() -> AsyncGenerator[str, None]:
        yield "a"
        with timed_wait():  # as the OpenAI provider's drain after [DONE]
            async with asyncio.timeout(0.05):
                await gate.wait()
        yield "b"

    ahead = ReadAhead(_watched(drains(), timeout_s=30))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    loop = asyncio.get_running_loop()
    loop.call_soon(gate.set)
    await ahead.before_write()  # waits for the step: its timer could hit the write
    written = loop.create_future()
    loop.call_later(0.2, written.set_result, None)
    with ahead.writing():
        await written  # outlasts the drain's timeout, which is no longer armed
    assert await ahead.next() == "b"


async def test_closing_ends_a_pending_step_as_a_cancellation() -> None:
    gate, closed = asyncio.Event(), asyncio.Event()
    events = _watched(_source(["a"], gate, ["b"], closed), timeout_s=30)
    ahead = ReadAhead(events)
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    await ahead.close()
    assert closed.is_set()  # the source was closed at its wait
    await events.aclose()  # and the stream can be closed: no step is left running
