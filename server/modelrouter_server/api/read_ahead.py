"""A stream's events read one step ahead of the client, so that the text deltas of one
upstream read go out as one gRPC message.

Each message costs grpc.aio a send and a trip through the event loop, several times what
relaying a token costs otherwise; an upstream often delivers many tokens in one read (a
burst after a pause, or simply a fast model). After a text delta the servicer takes every
event that is already there (`take_ready`), joins the deltas, and writes them at once.
Nothing waits for a batch: the first event that needs the upstream ends it, its step left
suspended while the batch is written, and resumed afterwards (`next`).

A step left suspended is still the handler task's: a timer inside it that cancels the
task would hit the write, and a lock it holds would hold up other streams. `stream_steps`
says which steps may overlap a write: a read of the aiohttp transport timed by its
`StallWatch`, whose clock stops during the write. Any other step is finished before the
write (`before_write`); a leg on another transport is not read ahead at all.
"""

from __future__ import annotations

import asyncio
import enum
import types
from collections.abc import AsyncGenerator, Coroutine, Generator, Iterator
from contextlib import contextmanager
from typing import Any, Final, Generic, TypeVar

from modelrouter_server.stream_steps import StepTimer, current_timer

T = TypeVar("T")


class _End(enum.Enum):
    END = "end"


END: Final = _End.END
"""The stream is over."""


class ReadAhead(Generic[T]):
    """Reads `events` for one servicer; `aclose` it (and with it `events`) when the RPC
    ends."""

    __slots__ = ("_error", "_events", "_held", "_step", "_timer", "_waiting")

    def __init__(self, events: AsyncGenerator[T, None]) -> None:
        self._events = events
        self._step: Coroutine[Any, Any, T] | None = None
        """A started step, suspended on `_waiting`."""
        self._waiting: Any = None
        self._held: T | _End | None = None
        """An event (or the end) already taken from the stream, next to hand out."""
        self._error: Exception | None = None
        """What the stream raised while a batch was gathered: raised after its write."""
        self._timer: StepTimer | None = None
        """The paused timer of the step that overlaps the write in progress."""

    async def next(self) -> T | _End:
        """The next event, waiting for it if needs be; `END` after the last."""
        held = self._held
        if held is not None:
            self._held = None
            return held
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        step, self._step = self._step, None
        try:
            if step is not None:
                return await _resume(step, self._waiting)  # type: ignore[no-any-return]
            return await anext(self._events)
        except StopAsyncIteration:
            return END

    def take_ready(self) -> T | None:
        """The next event if it is there without waiting, else None: a step that has to
        wait stays suspended for `next`, and an end or an error is kept for it."""
        if self._held is not None or self._error is not None or self._step is not None:
            return None
        timer = current_timer()
        if timer is None or not timer.safe_reads:
            return None  # not a leg whose step may be left suspended (stream_steps)
        step = self._events.__anext__()
        try:
            waiting = step.send(None)
        except StopIteration as ready:
            event: T = ready.value
            return event
        except StopAsyncIteration:
            self._held = END
            return None
        except Exception as error:  # raised by `next`, once the text before it is written
            self._error = error
            return None
        self._step, self._waiting = step, waiting
        return None

    def put_back(self, event: T) -> None:
        """`event`, taken by `take_ready`, is handed out again by the next `next`."""
        self._held = event

    async def before_write(self) -> None:
        """Carry a suspended step on until it may overlap a write (see the module doc):
        one that waits under a timer of its own (a drain) is run past that wait, to the
        read or the turn it passes next, not to its end."""
        while self._step is not None:
            timer = current_timer()
            if timer is not None and timer.overlappable():
                self._timer = timer
                return
            try:
                done, value = await _advance(self._step, self._waiting)
            except StopAsyncIteration:
                self._step, self._held = None, END
                return
            except Exception as error:  # raised by `next`, after the write
                self._step, self._error = None, error
                return
            except BaseException:
                self._step = None  # ended by the cancellation thrown into it
                raise
            if done:
                self._step, self._held = None, value
            else:
                self._waiting = value

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write that follows `before_write`: the overlapping step's clock stops."""
        timer, self._timer = self._timer, None
        if timer is None:
            yield
            return
        timer.pause()
        try:
            yield
        finally:
            timer.resume()

    async def aclose(self) -> None:
        """Close the stream, first ending a suspended step as a cancellation would have
        (a generator cannot be closed while one of its steps is under way)."""
        try:
            await self._end_step()
        finally:
            await self._events.aclose()

    async def _end_step(self) -> None:
        step, self._step = self._step, None
        if step is None:
            return
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            waiting = step.throw(asyncio.CancelledError())
            await _resume(step, waiting)
        except asyncio.CancelledError:
            if task is not None and task.cancelling() > cancelling:
                raise  # the task was cancelled meanwhile, not only the step
        except (StopIteration, StopAsyncIteration, Exception):
            pass  # the stream's own ending, of no interest once the call is over


async def _resume(step: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    """Carry on `step`, suspended on `waiting`, in the current task to its end: what the
    task sends or throws in goes to the step, as when a coroutine awaits another."""
    while True:
        done, value = await _advance(step, waiting)
        if done:
            return value
        waiting = value


@types.coroutine
def _advance(step: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, tuple[bool, Any]]:
    """One turn of `step`, suspended on `waiting`, in the current task: wait for that,
    then run the step to its next wait. (True, its result) when it finished, else (False,
    what it waits on now)."""
    try:
        sent = yield waiting
    except BaseException as exc:
        try:
            return False, step.throw(exc)
        except StopIteration as done:
            return True, done.value
    try:
        return False, step.send(sent)
    except StopIteration as done:
        return True, done.value
