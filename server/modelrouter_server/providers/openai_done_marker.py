"""Telling an OpenAI stream that ended with `data: [DONE]` from one whose body just stopped.

The openai SDK stops iterating at `[DONE]` and also, without a word, when the body ends
early, so its iterator cannot tell a complete answer from a cut one. The provider reads the
SSE body itself (`providers.sse`) and asks `is_done_marker` of each event's data: only a
body that carried the marker holds a complete answer.

After the marker, `drain_after_done` reads what is left of an HTTP/1.1 body (normally just
the chunked terminator), as the SDK does, so the connection goes back to the pool instead
of being closed; it waits a tenth of a second at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2

from modelrouter_server.providers.sse import TRANSPORT_ERRORS
from modelrouter_server.stream_steps import timed_wait

_DONE = b"[DONE]"
_DRAIN_TIMEOUT_S = 0.1
_DRAIN_ENDS: tuple[type[BaseException], ...] = (
    TimeoutError,
    httpx2.StreamConsumed,
    *TRANSPORT_ERRORS,
)


def is_done_marker(data: bytes) -> bool:
    """Whether an event's data is the marker (the same test the SDK applies)."""
    return data.startswith(_DONE)


async def drain_after_done(response: httpx2.Response, body: AsyncIterator[bytes]) -> None:
    """Read the rest of `body` (of `response`) after the marker; failures are ignored,
    since the answer is already complete."""
    if response.is_closed or response.http_version != "HTTP/1.1":
        return
    try:
        with timed_wait():  # its timer cancels the task: no write may overlap it
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                async for _ in body:
                    pass
    except _DRAIN_ENDS:
        pass
