"""The inter-token timeout of one stream with one timer, not one per token.

`asyncio.timeout` around every step schedules a timer and cancels it for each token; the
cancelled handles pile up in the loop's heap until it is rebuilt, which costs several
microseconds a token (measured 5-30 us, a sizeable part of relaying one). Here a step only
notes its deadline; one timer per stream, re-armed lazily when it fires before the current
deadline, cancels the waiting task when a step outlives it. The cancellation reaches the
provider's generator at its await point exactly as `asyncio.timeout`'s does (so its HTTP
response is closed), and is taken back (`Task.uncancel`) before `StepExpired` is raised,
unless someone else cancelled the task too.

A step may stay suspended while the servicer writes the text before it to the client
(`stream_steps`): the watch is its leg's `StepTimer`, and is paused during such a write
so that its cancellation can only reach the step's own wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from modelrouter_server import stream_steps


class StepExpired(Exception):
    """Our own per-step timeout fired (as opposed to a `TimeoutError` from below)."""


class StallWatch:
    """Times the steps of one stream; `close` it when the stream is done."""

    __slots__ = (
        "_cap",
        "_deadline",
        "_fired",
        "_handle",
        "_loop",
        "_paused_at",
        "_task",
        "reading",
        "safe_reads",
        "timed_waits",
        "turn_passed",
    )

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._task: asyncio.Task[Any] | None = None
        """The task waiting for a step; None between steps."""
        self._fired = False
        self._paused_at: float | None = None
        """When the write that the step overlaps began; None: not paused."""
        self._cap: float | None = None
        """The caller's deadline, in loop time, for the step in progress (None: none)."""
        self.safe_reads = False
        self.reading = False
        self.timed_waits = 0
        self.turn_passed = False
        stream_steps.timing(self)  # one watch per leg, made when the leg opens

    async def step(
        self, stream: AsyncIterator[Any], timeout_s: float, *, within_s: float | None = None
    ) -> Any:
        """`stream`'s next item within `timeout_s`, else `StepExpired`. `within_s`: what is
        left of the caller's deadline, which the time given back for a write (`resume`)
        never passes."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel, so time it the usual way
            return await timed_step(stream, timeout_s)
        now = self._loop.time()
        self._deadline = deadline = now + timeout_s
        handle = self._handle
        if handle is None or handle.when() > deadline:
            self._arm(deadline)
        cancelling = task.cancelling()
        self._task = task
        self._cap = None if within_s is None else now + within_s
        try:
            item = await anext(stream)
        except asyncio.CancelledError:
            if self._took_back(task, cancelling):
                raise StepExpired from None
            raise
        finally:
            self._task = None
            self._paused_at = None
        # The step finished although the timer fired (the cancellation was swallowed
        # below): our request must not hit the caller later.
        self._took_back(task, cancelling)
        return item

    def overlappable(self) -> bool:
        if self.turn_passed:
            return True
        return self._task is not None and self.reading and not self.timed_waits

    def pause(self) -> None:
        """The step's task writes to its client from now on: the clock stops."""
        self._paused_at = self._loop.time()

    def resume(self) -> None:
        """The write is over: the step's deadline moves on by its length, but never past
        the caller's deadline (a step that runs out meanwhile expires now, or returns what
        came in the meantime)."""
        if self._paused_at is None:
            return
        moved = self._deadline + self._loop.time() - self._paused_at
        self._deadline = moved if self._cap is None else min(moved, self._cap)
        self._paused_at = None
        if self._handle is None and self._task is not None:
            self._arm(self._deadline)  # it came due during the pause

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if stream_steps.current_timer() is self:
            stream_steps.timing(None)

    def _took_back(self, task: asyncio.Task[Any], cancelling: int) -> bool:
        """True when our timer cancelled the task and no one else did."""
        if not self._fired:
            return False
        self._fired = False
        return task.uncancel() <= cancelling

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # between steps: the next step arms the timer again
        if self._paused_at is not None:
            return  # a cancellation now would hit the write: `resume` arms it again
        if self._loop.time() >= self._deadline:
            self._fired = True
            task.cancel()
        else:
            self._handle = self._loop.call_at(self._deadline, self._check)


async def timed_step(stream: AsyncIterator[Any], timeout_s: float) -> Any:
    """`stream`'s next item within `timeout_s` under its own `asyncio.timeout`, else
    `StepExpired` (a `TimeoutError` from below passes through unchanged).

    For a single step (a stream's first event) or outside a task; a run of steps uses
    `StallWatch`, which shares one timer among them.
    """
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            return await anext(stream)
    except TimeoutError:
        if scope.expired():
            raise StepExpired from None
        raise
