"""Whether a stream's pending step may wait while the servicer writes to its client.

Text deltas that arrive in one upstream read are sent in one gRPC message: after a delta,
the servicer starts the stream's next step at once and, when that step has to wait for the
upstream, writes the text gathered so far while the step stays suspended (`api.read_ahead`).
The step belongs to the handler's task, so anything that bounds a wait inside it by
cancelling the task (`asyncio.timeout`) would hit the write instead of the wait. Hence:

- the one timer of a plain step, `StallWatch`, registers here while it times a step and is
  paused during the write (time spent writing is not the upstream's stall);
- any other wait inside a step that arms a cancelling timer runs under `timed_wait()`,
  and the servicer finishes that step before it writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class StepTimer(Protocol):
    """The timer of the step in progress (one per stream leg)."""

    overlappable: bool
    """False while the step waits under a cancelling timer of someone else's."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...


_TIMING: ContextVar[StepTimer | None] = ContextVar("modelrouter_step_timer", default=None)


def timing(timer: StepTimer | None) -> None:
    """`timer` times the current task's step from now on (None: no step in progress).
    Steps do not nest, so there is nothing to restore."""
    _TIMING.set(timer)


def current_timer() -> StepTimer | None:
    """The timer of the current task's step in progress, if any."""
    return _TIMING.get()


@contextmanager
def timed_wait() -> Iterator[None]:
    """Marks a wait under its own cancelling timer: no write may overlap it."""
    timer = _TIMING.get()
    if timer is None:
        yield
        return
    before = timer.overlappable
    timer.overlappable = False
    try:
        yield
    finally:
        timer.overlappable = before
