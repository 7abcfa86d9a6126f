"""Server-sent events read straight off an HTTP body, and JSON parsed with orjson.

The hot path of a streamed answer: the SDKs' own iterators build a pydantic-style model per
event (type introspection for every field, about 100 us per chunk), which is most of what a
router spends relaying a token. The providers instead open the call as the SDK client
builds it (`providers.sdk_endpoint`: configuration, auth, headers and the error classes of
a non-2xx reply stay the SDK's) and read the body here: one `bytes.split` per network
read, one `orjson.loads` per event, plain dicts out.

Framing follows the SSE spec as the SDKs apply it: lines end in LF, CRLF or CR; a blank line
dispatches the event; `:` starts a comment; one space after the field's colon is dropped;
several `data:` lines join with LF; `id` and `retry` are not used by either API and are
ignored; an event not closed by a blank line when the body ends is dropped.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import orjson

from modelrouter_server.errors import InterruptionKind
from modelrouter_server.providers.upstream_errors import UpstreamErrors, transport_detail

JSONDecodeError = orjson.JSONDecodeError
"""Raised by `loads` (a subclass of `json.JSONDecodeError`)."""

loads = orjson.loads
"""JSON text (bytes or str) to Python objects; the fastest decoder measured here."""

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpx2.RequestError,
    ssl.SSLError,
    anyio.EndOfStream,
)
"""What reading a body raises when the connection fails (the set the SDKs map to their
`APIConnectionError`); `httpx2.TimeoutException` among them is a stall."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its `event:` name (None when absent) and its data."""

    event: bytes | None
    data: bytes


class SSEDecoder:
    """Bytes in, whole events out; keeps the partial line and event between reads."""

    __slots__ = ("_data", "_event", "_skip_lf", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._event: bytes | None = None
        self._data: list[bytes] = []
        self._skip_lf = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """The events that `chunk` completes, in order."""
        if self._skip_lf and chunk:
            # The previous read ended with CR: an LF starting this one completes a CRLF.
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        self._tail = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            if line:
                self._field(line)
            elif self._data or self._event is not None:
                events.append(ServerSentEvent(self._event, b"\n".join(self._data)))
                self._event, self._data = None, []
        return events

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # ":" a comment (keep-alive)
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value


def json_object(data: bytes) -> dict[str, Any]:
    """`data` parsed; a JSON value that is not an object becomes an empty one (the SDKs
    build their models without validation, so such an event carries nothing)."""
    value = loads(data)
    return value if isinstance(value, dict) else {}


async def next_read(
    body: AsyncIterator[bytes],
    decoder: SSEDecoder,
    errors: UpstreamErrors,
    request_id: str | None,
) -> list[ServerSentEvent] | None:
    """The events completed by the body's next network read (often none, or several);
    None once the body has ended. A failing connection becomes `StreamInterrupted`:
    STALLED on a read timeout, DROPPED otherwise."""
    try:
        chunk = await anext(body)
    except StopAsyncIteration:
        return None
    except httpx2.TimeoutException as exc:
        raise errors.interrupted(
            InterruptionKind.STALLED, transport_detail(exc), request_id=request_id
        ) from exc
    except TRANSPORT_ERRORS as exc:
        raise errors.interrupted(
            InterruptionKind.DROPPED, transport_detail(exc), request_id=request_id
        ) from exc
    return decoder.feed(chunk)


def body_bytes(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The response body as it arrives: raw when it is not content-encoded (one layer of
    httpx's generators fewer per read), else decoded."""
    if response.headers.get("content-encoding", "identity") == "identity":
        return response.aiter_raw()
    return response.aiter_bytes()
