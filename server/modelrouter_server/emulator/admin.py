"""The admin endpoints, so that a separate process (a benchmark, the CLI) can script the
emulator over HTTP:

- `POST /_emulator/behavior` `{"model": "...", "behavior": {...}, "enqueue": false}`
- `POST /_emulator/reset`
- `GET /_emulator/requests` and `GET /_emulator/disconnects`: the records, as JSON lists
"""

from __future__ import annotations

import dataclasses
import json

from aiohttp import web

from modelrouter_server.emulator.behavior import behavior_from_mapping
from modelrouter_server.emulator.exchange import EmulatorState

PREFIX = "/_emulator"


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def add_admin_routes(app: web.Application, state: EmulatorState) -> None:
    """Register the admin endpoints on `app`."""

    async def set_behavior(request: web.Request) -> web.Response:
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return _bad_request("body is not valid JSON")
        if not isinstance(payload, dict):
            return _bad_request("body must be a JSON object")
        model = payload.get("model")
        fields = payload.get("behavior", {})
        enqueue = payload.get("enqueue", False)
        if not isinstance(model, str) or not model:
            return _bad_request("model must be a non-empty string")
        if not isinstance(fields, dict) or not isinstance(enqueue, bool):
            return _bad_request("behavior must be an object and enqueue a boolean")
        try:
            behavior = behavior_from_mapping(fields)
        except (TypeError, ValueError) as error:
            return _bad_request(str(error))
        if enqueue:
            state.script.enqueue(model, (behavior,))
        else:
            state.script.set_default(model, behavior)
        return web.json_response({"model": model, "behavior": dataclasses.asdict(behavior)})

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"reset": True})

    async def requests(request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(r) for r in state.requests])

    async def disconnects(request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(d) for d in state.disconnects])

    app.router.add_post(f"{PREFIX}/behavior", set_behavior)
    app.router.add_post(f"{PREFIX}/reset", reset)
    app.router.add_get(f"{PREFIX}/requests", requests)
    app.router.add_get(f"{PREFIX}/disconnects", disconnects)
