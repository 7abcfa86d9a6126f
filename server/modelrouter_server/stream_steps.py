"""Whether a stream's pending step may wait while the servicer writes to its client.

Text deltas that arrive in one upstream read are sent in one gRPC message: after a delta,
the servicer takes the stream's next steps at once while they need no waiting and, when
one has to wait for the upstream, writes the text gathered so far while that step stays
suspended (`api.read_ahead`). The step belongs to the handler's task, so a wait inside it
must hold nothing another stream needs and arm no timer that cancels the task (such as
`asyncio.timeout`): the cancellation would hit the write instead of the wait. Hence a
suspended step may overlap a write only when all of these hold:

- its leg's `StallWatch` times it; the watch is paused during the write (time spent
  writing to a slow client is not the upstream's stall; when what bounds the step is the
  caller's deadline, the step that ran out meanwhile expires as the write ends);
- it waits in a read of the aiohttp transport (`reading`), which holds no lock and arms no
  timer; httpx's own transport (HTTP/2, proxies) holds the connection's read lock and an
  anyio cancel scope across a read, so its legs are not read ahead at all (`safe_reads`);
- no wait inside it runs under a cancelling timer of its own (`timed_wait()`).

Any other suspended step is finished before the write. So that what may be slow without
being a read (failing over to the next model after a break, the accounting at a stream's
end) never holds back text that has arrived, the chain passes its turn (`pass_turn`)
before it: a step suspended there holds nothing and may overlap the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class StepTimer(Protocol):
    """The timer of the current leg's steps (one `StallWatch` per stream leg)."""

    safe_reads: bool
    """The leg reads through a transport whose reads may overlap a write."""
    reading: bool
    """The step in progress waits in such a read right now."""
    timed_waits: int
    """Waits in progress under a cancelling timer of their own."""
    turn_passed: bool
    """The step is suspended in `pass_turn`."""

    def overlappable(self) -> bool:
        """Whether the suspended step may stay suspended across a write."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


_TIMING: ContextVar[StepTimer | None] = ContextVar("modelrouter_step_timer", default=None)


def timing(timer: StepTimer | None) -> None:
    """`timer` times the current task's stream leg from now on (None: no leg)."""
    _TIMING.set(timer)


def current_timer() -> StepTimer | None:
    """The timer of the current task's stream leg, if any."""
    return _TIMING.get()


@contextmanager
def timed_wait() -> Iterator[None]:
    """Marks a wait under its own cancelling timer: no write may overlap it."""
    timer = _TIMING.get()
    if timer is None:
        yield
        return
    timer.timed_waits += 1
    try:
        yield
    finally:
        timer.timed_waits -= 1


@contextmanager
def overlappable_read() -> Iterator[None]:
    """Around a transport's wait for bytes that holds nothing and arms no timer."""
    timer = _TIMING.get()
    if timer is None:
        yield
        return
    timer.safe_reads = timer.reading = True
    try:
        yield
    finally:
        timer.reading = False


async def pass_turn() -> None:
    """Let a write of the text already relayed go first, before work that is not a read.
    Outside a read-ahead it costs one turn of the event loop, only where it is called:
    after a leg broke and at a stream's end."""
    timer = _TIMING.get()
    if timer is None:
        return
    timer.turn_passed = True
    try:
        await asyncio.sleep(0)
    finally:
        timer.turn_passed = False
