"""Work proportional to a message's size, done where it does not hold up the event loop.

Decoding, converting and encoding a protobuf message of many megabytes are each one long
C call that holds the loop thread for its whole length (tens of ms per 20 MB), and they
add up: a concurrent ListModels waited for all of them. Past `OFF_LOOP_BYTES` that work
runs in a worker thread; the loop then waits at most for one C call to give back the GIL.
Below it a thread hop would cost more than the work, so it runs inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from modelrouter_server.domain import Message

OFF_LOOP_BYTES = 256 * 1024
"""The size from which work on a message leaves the loop thread."""

_P = ParamSpec("_P")
_T = TypeVar("_T")


async def off_loop_if(
    large: bool, work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """`work(*args, **kwargs)`, in a worker thread when `large`, else inline."""
    if not large:
        return work(*args, **kwargs)
    return await asyncio.to_thread(work, *args, **kwargs)


def text_size(messages: Iterable[Message]) -> int:
    """The characters of text in `messages`: a cheap measure of what converting them costs."""
    return sum(len(m.content) for m in messages)
