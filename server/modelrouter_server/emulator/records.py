"""What the emulator remembers about the requests it served, for tests to assert on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelrouter_server.emulator.models import Api

AuthScheme = Literal["x-api-key", "bearer"]


@dataclass
class RequestRecord:
    """One request as received, and how it ended.

    `auth` names the scheme the client used, never the key. `outcome` stays None while the
    response is in flight, then is one of "ok", "error:<status>", "error_event", "dropped",
    "truncated", "stalled" (a stall that ran its full length) or "client_disconnected".
    Times are `time.monotonic()`. `tokens_sent` counts the answer tokens written so far
    (live while a stream is in flight).
    """

    id: str
    path: str
    api: Api
    model: str
    stream: bool
    body: object
    auth: AuthScheme | None
    started_at: float
    ended_at: float | None = None
    outcome: str | None = None
    tokens_sent: int = 0


@dataclass(frozen=True)
class DisconnectRecord:
    """The client closed the connection before the response was complete.

    `at` is `time.monotonic()` when the emulator noticed; `tokens_sent` counts the answer
    tokens already written.
    """

    request_id: str
    model: str
    at: float
    tokens_sent: int
