"""The admin endpoints, so that a separate process (a benchmark, the CLI) can script the
emulator over HTTP:

- `POST /_emulator/behavior` `{"model": "...", "behavior": {...}, "enqueue": false}`
- `POST /_emulator/reset`
- `GET /_emulator/requests` and `GET /_emulator/disconnects`: the records kept, as JSON lists

A test in another process waits for an event rather than polling: `GET
/_emulator/requests?arrived=N` (or `?finished=N`) and `GET /_emulator/disconnects?count=N`
answer once N requests have arrived (or ended) or N clients have disconnected since the last
reset, or 504 after `timeout` seconds (default 5, at most 60).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

from aiohttp import web

from modelrouter_server.emulator.behavior import Behavior, behavior_from_mapping
from modelrouter_server.emulator.exchange import EmulatorState

PREFIX = "/_emulator"
_DEFAULT_WAIT_S = 5.0
_MAX_WAIT_S = 60.0


class _BadQuery(ValueError):
    """A query parameter that does not parse; its message names the parameter."""


def _count(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"{name} must be an integer >= 0") from None
    if value < 0:
        raise _BadQuery(f"{name} must be an integer >= 0")
    return value


def _timeout(request: web.Request) -> float:
    raw = request.query.get("timeout")
    if raw is None:
        return _DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        raise _BadQuery(f"timeout must be a number of seconds up to {_MAX_WAIT_S:g}") from None
    if not 0 <= value <= _MAX_WAIT_S:
        raise _BadQuery(f"timeout must be a number of seconds up to {_MAX_WAIT_S:g}")
    return value


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def add_admin_routes(app: web.Application, state: EmulatorState) -> None:
    """Register the admin endpoints on `app`."""
    admin = _Admin(state)
    app.router.add_post(f"{PREFIX}/behavior", admin.set_behavior)
    app.router.add_post(f"{PREFIX}/reset", admin.reset)
    app.router.add_get(f"{PREFIX}/requests", admin.requests)
    app.router.add_get(f"{PREFIX}/disconnects", admin.disconnects)


def _scripted(payload: object) -> tuple[str, Behavior, bool]:
    """The model, behavior and `enqueue` flag of a `/behavior` body, or `_BadQuery`."""
    if not isinstance(payload, dict):
        raise _BadQuery("body must be a JSON object")
    model = payload.get("model")
    fields = payload.get("behavior", {})
    enqueue = payload.get("enqueue", False)
    if not isinstance(model, str) or not model:
        raise _BadQuery("model must be a non-empty string")
    if not isinstance(fields, dict) or not isinstance(enqueue, bool):
        raise _BadQuery("behavior must be an object and enqueue a boolean")
    try:
        return model, behavior_from_mapping(fields), enqueue
    except (TypeError, ValueError) as error:
        raise _BadQuery(str(error)) from None


class _Admin:
    """The admin endpoints' handlers over one emulator's state."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    async def set_behavior(self, request: web.Request) -> web.Response:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _bad_request("body is not valid JSON")
        try:
            model, behavior, enqueue = _scripted(payload)
        except _BadQuery as error:
            return _bad_request(str(error))
        if enqueue:
            self._state.script.enqueue(model, (behavior,))
        else:
            self._state.script.set_default(model, behavior)
        return web.json_response({"model": model, "behavior": dataclasses.asdict(behavior)})

    async def reset(self, request: web.Request) -> web.Response:
        self._state.reset()
        return web.json_response({"reset": True})

    async def requests(self, request: web.Request) -> web.Response:
        state = self._state
        waits = {"arrived": lambda: state.received, "finished": lambda: state.finished}
        return await self._after(
            request, waits, lambda: [dataclasses.asdict(r) for r in state.requests]
        )

    async def disconnects(self, request: web.Request) -> web.Response:
        state = self._state
        return await self._after(
            request,
            {"count": lambda: state.disconnected},
            lambda: [dataclasses.asdict(d) for d in state.disconnects],
        )

    async def _after(
        self,
        request: web.Request,
        events: dict[str, Callable[[], int]],
        records: Callable[[], list[dict[str, object]]],
    ) -> web.Response:
        """`records()` as JSON once the counts the query asks for are reached; 400 for a
        bad query, 504 when they are not reached within its timeout."""
        try:
            timed_out = await self._wait(request, events)
        except _BadQuery as error:
            return _bad_request(str(error))
        if timed_out is not None:
            return web.json_response({"error": timed_out}, status=504)
        return web.json_response(records())

    async def _wait(self, request: web.Request, events: dict[str, Callable[[], int]]) -> str | None:
        """Wait for the counts asked for in the query; an error message, or None."""
        timeout = _timeout(request)
        for name, current in events.items():
            wanted = _count(request, name)
            if wanted is not None and not await self._reached(current, wanted, timeout):
                return f"{name}: {current()} of {wanted} after {timeout:g} s"
        return None

    async def _reached(self, current: Callable[[], int], wanted: int, wait_s: float) -> bool:
        try:
            await self._state.wait_until(lambda: current() >= wanted, wait_s, str)
        except TimeoutError:
            return False
        return True
