"""Scripting the emulator of another process over its admin HTTP endpoints.

The router's embedded emulator logs its base URL at start-up; these calls script how it
answers (`Behavior` fields as JSON) and read what it saw. See
`modelrouter_server.emulator.admin` for the endpoints.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Mapping

ANY_MODEL = "*"


def _call(url: str, payload: object | None = None, *, wait_s: float = 0.0) -> object:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if payload is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10 + wait_s) as response:
        return json.loads(response.read())


def set_behavior(
    base_url: str,
    behavior: Mapping[str, object],
    *,
    model: str = ANY_MODEL,
    enqueue: bool = False,
) -> None:
    """Make `model` ("*": every model) answer with `behavior` from now on (or, with
    `enqueue`, for its next request only)."""
    _call(
        f"{base_url}/_emulator/behavior",
        {"model": model, "behavior": dict(behavior), "enqueue": enqueue},
    )


def reset(base_url: str) -> None:
    """Forget every behavior and record."""
    _call(f"{base_url}/_emulator/reset", {})


def _query(counts: Mapping[str, int | None], timeout_s: float) -> str:
    wanted = {name: count for name, count in counts.items() if count is not None}
    if not wanted:
        return ""
    return "?" + urllib.parse.urlencode({**wanted, "timeout": timeout_s})


def requests(
    base_url: str,
    *,
    arrived: int | None = None,
    finished: int | None = None,
    timeout_s: float = 30.0,
) -> list[dict[str, object]]:
    """The requests the emulator keeps, oldest first, with their `outcome`.

    With `arrived` (or `finished`), first waits until that many requests have arrived (or
    ended) since the last reset; the emulator answers the moment they have, so nothing polls.
    Raises `urllib.error.HTTPError` (504) after `timeout_s`."""
    query = _query({"arrived": arrived, "finished": finished}, timeout_s)
    records = _call(f"{base_url}/_emulator/requests{query}", wait_s=timeout_s)
    assert isinstance(records, list)
    return records


def disconnects(
    base_url: str, *, count: int | None = None, timeout_s: float = 30.0
) -> list[dict[str, object]]:
    """Responses the client closed before they were complete; with `count`, first waits
    until that many have been recorded since the last reset (504 after `timeout_s`)."""
    query = _query({"count": count}, timeout_s)
    records = _call(f"{base_url}/_emulator/disconnects{query}", wait_s=timeout_s)
    assert isinstance(records, list)
    return records
