"""Scripting the emulator of another process over its admin HTTP endpoints.

The router's embedded emulator logs its base URL at start-up; these calls script how it
answers (`Behavior` fields as JSON) and read what it saw. See
`modelrouter_server.emulator.admin` for the endpoints.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping

ANY_MODEL = "*"


def _call(url: str, payload: object | None = None) -> object:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="GET" if payload is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
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


def requests(base_url: str) -> list[dict[str, object]]:
    """Every request the emulator served, oldest first, with its `outcome`."""
    records = _call(f"{base_url}/_emulator/requests")
    assert isinstance(records, list)
    return records


def disconnects(base_url: str) -> list[dict[str, object]]:
    """Responses the client closed before they were complete."""
    records = _call(f"{base_url}/_emulator/disconnects")
    assert isinstance(records, list)
    return records
