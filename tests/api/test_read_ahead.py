"""Reading a stream one step ahead: what is there is taken at once, a wait is left
pending across the write, and only a step timed by its StallWatch may overlap one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from modelrouter_server.api.read_ahead import END, ReadAhead
from modelrouter_server.resilience.stall_watch import StallWatch, StepExpired
from modelrouter_server.stream_steps import overlappable_read, pass_turn, timed_wait


async def _source(
    first: list[str],
    gate: asyncio.Event,
    then: list[str],
    closed: asyncio.Event | None = None,
    *,
    plain_read: bool = True,
) -> AsyncGenerator[str, None]:
    """`first` in one read, then a wait on `gate`, then `then`. `plain_read`: the reads
    are marked as the aiohttp transport marks its own (False: as httpx's transport, which
    holds a lock across a read)."""
    try:
        if plain_read:  # the read that brought `first`
            with overlappable_read():
                await asyncio.sleep(0)
        for item in first:
            yield item
        if plain_read:
            with overlappable_read():
                await gate.wait()
        else:
            await gate.wait()
        for item in then:
            yield item
    finally:
        if closed is not None:
            closed.set()


async def _watched(
    stream: AsyncIterator[str], timeout_s: float, *, within_s: float | None = None
) -> AsyncGenerator[str, None]:
    """Every step of `stream` under one StallWatch, as a stream leg reads its provider;
    `within_s`: the caller's deadline, from each step's start."""
    watch = StallWatch()
    try:
        while True:
            try:
                yield await watch.step(stream, timeout_s, within_s=within_s)
            except StopAsyncIteration:
                return
    finally:
        watch.close()


async def test_what_is_there_is_taken_at_once_and_a_wait_is_resumed() -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_watched(_source(["a", "b", "c"], gate, ["d"]), timeout_s=30))
    assert await ahead.next() == "a"
    assert [ahead.take_ready(), ahead.take_ready()] == ["b", "c"]
    # "d" needs the gate: the step is left suspended, and nothing else is taken meanwhile.
    assert ahead.take_ready() is None
    assert ahead.take_ready() is None
    gate.set()
    assert await ahead.next() == "d"
    assert ahead.take_ready() is None
    assert await ahead.next() is END
    await ahead.aclose()


async def test_an_event_put_back_comes_next() -> None:
    gate = asyncio.Event()
    gate.set()
    ahead = ReadAhead(_watched(_source(["a", "b"], gate, ["c"]), timeout_s=30))
    assert await ahead.next() == "a"
    event = ahead.take_ready()
    assert event == "b"
    ahead.put_back(event)
    assert [await ahead.next(), await ahead.next(), await ahead.next()] == ["b", "c", END]


async def test_an_error_behind_the_text_is_raised_after_it() -> None:
    async def breaks() -> AsyncGenerator[str, None]:
        with overlappable_read():
            await asyncio.sleep(0)  # one read first, so the leg is known to read plainly
        yield "a"
        raise ValueError("upstream broke")

    ahead = ReadAhead(_watched(breaks(), timeout_s=30))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None  # the text before the error still goes out first
    with pytest.raises(ValueError, match="upstream broke"):
        await ahead.next()


async def test_a_leg_whose_reads_hold_a_lock_is_not_read_ahead() -> None:
    # httpx's HTTP/2 transport holds the connection's read lock across a read: a step
    # suspended there would hold up every other stream on the connection.
    gate = asyncio.Event()
    ahead = ReadAhead(_watched(_source(["a", "b"], gate, ["c"], plain_read=False), 30))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None  # "b" is there, but no step is even started
    assert await ahead.next() == "b"
    gate.set()
    assert [await ahead.next(), await ahead.next()] == ["c", END]


@pytest.mark.parametrize(
    ("stall_s", "within_s", "write_s", "gate_after_s"),
    [
        # It may overlap the write, but a pause must not stretch the caller's deadline: run
        # out during the write, it expires as the write ends, before "b" comes 20 ms later.
        pytest.param(0.05, 0.05, 0.2, 0.02, id="bounded-by-the-deadline"),
        # The stall limit (0.2 s) is nearer than the deadline (0.3 s) when the step starts;
        # a 0.25 s write must not carry the step past the deadline: it expires at 0.3 s,
        # before "b" comes at 0.35 s (with the whole write given back it would wait until
        # 0.45 s).
        pytest.param(0.2, 0.3, 0.25, 0.1, id="stall-limit-nearer"),
    ],
)
async def test_the_time_given_back_for_a_write_stops_at_the_callers_deadline(
    stall_s: float, within_s: float, write_s: float, gate_after_s: float
) -> None:
    gate = asyncio.Event()
    ahead = ReadAhead(_watched(_source(["a"], gate, ["b"]), stall_s, within_s=within_s))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    await ahead.before_write()
    loop = asyncio.get_running_loop()
    written = loop.create_future()
    loop.call_later(write_s, written.set_result, None)
    with ahead.writing():
        await written
    loop.call_later(gate_after_s, gate.set)
    with pytest.raises(StepExpired):
        await ahead.next()


async def test_text_goes_out_before_slow_work_that_passes_its_turn() -> None:
    # As the chain does before failing over after a break, or before a stream's
    # accounting: the text already there is written first, not after that work.
    gate = asyncio.Event()

    async def then_slow_work() -> AsyncGenerator[str, None]:
        with overlappable_read():
            await asyncio.sleep(0)
        yield "a"
        await pass_turn()
        await gate.wait()  # the next model's first token, say: no read of this leg
        yield "b"

    ahead = ReadAhead(_watched(then_slow_work(), timeout_s=30))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    asyncio.get_running_loop().call_later(0.2, gate.set)
    await ahead.before_write()
    assert not gate.is_set()  # it did not wait for the slow work
    with ahead.writing():
        pass
    assert await ahead.next() == "b"


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


async def test_a_drain_is_waited_for_but_not_the_accounting_behind_it() -> None:
    # The read that brought the last text also brought [DONE]; the drain of the rest of
    # the body runs under its own timer, so the write waits for it, but no longer.
    drained, accounted = asyncio.Event(), asyncio.Event()

    async def last_read() -> AsyncGenerator[str, None]:
        with overlappable_read():
            await asyncio.sleep(0)
        yield "a"
        with timed_wait():
            async with asyncio.timeout(5):
                await drained.wait()
        await pass_turn()
        await accounted.wait()  # the stream's accounting, slow here
        yield "b"

    ahead = ReadAhead(_watched(last_read(), timeout_s=30))
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    loop = asyncio.get_running_loop()
    loop.call_soon(drained.set)
    loop.call_later(0.2, accounted.set)
    await ahead.before_write()
    assert drained.is_set() and not accounted.is_set()
    with ahead.writing():
        pass
    assert await ahead.next() == "b"


async def test_closing_ends_a_pending_step_as_a_cancellation() -> None:
    gate, closed = asyncio.Event(), asyncio.Event()
    events = _watched(_source(["a"], gate, ["b"], closed), timeout_s=30)
    ahead = ReadAhead(events)
    assert await ahead.next() == "a"
    assert ahead.take_ready() is None
    await ahead.aclose()
    assert closed.is_set()  # the source was closed at its wait
    with pytest.raises(StopAsyncIteration):  # and the stream itself is closed
        await anext(events)
