"""The emulator's HTTP server and its Python handle, `Emulator`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from aiohttp import web

from modelrouter_server.emulator._tokens import o200k
from modelrouter_server.emulator.admin import add_admin_routes
from modelrouter_server.emulator.anthropic_api import MAX_REQUEST_BYTES, AnthropicMessages
from modelrouter_server.emulator.behavior import Behavior
from modelrouter_server.emulator.exchange import (
    DEFAULT_MAX_RECORDS,
    EmulatorState,
    serve_count_tokens,
    serve_generation,
)
from modelrouter_server.emulator.models import DEFAULT_MODELS, EmulatedModel
from modelrouter_server.emulator.openai_api import OpenAIChat
from modelrouter_server.emulator.records import DisconnectRecord, RequestRecord

# Handlers still running at shutdown are cancelled first, so this only bounds the wait for
# them to unwind.
_SHUTDOWN_TIMEOUT_S = 1.0
_UNSPECIFIED_HOSTS = frozenset({"", "0.0.0.0", "::"})


def build_app(state: EmulatorState, *, admin: bool = False) -> web.Application:
    """The aiohttp application serving both provider APIs, and with `admin` the admin
    endpoints."""
    # Above Anthropic's own 32 MB limit, so that the emulator answers 413 like the API does.
    app = web.Application(client_max_size=2 * MAX_REQUEST_BYTES)
    anthropic = AnthropicMessages(state.models, state.prompt_cache)
    openai = OpenAIChat(state.models, state.prompt_cache)

    async def messages(request: web.Request) -> web.StreamResponse:
        return await serve_generation(request, anthropic, state)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        return await serve_count_tokens(request, anthropic, state)

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await serve_generation(request, openai, state)

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/v1/chat/completions", chat_completions)
    if admin:
        add_admin_routes(app, state)
    return app


class Emulator:
    """A wire-compatible stand-in for the Anthropic Messages and OpenAI Chat Completions
    APIs, served over real HTTP so the official SDKs can talk to it unmodified.

    Point `anthropic.AsyncAnthropic(base_url=emulator.base_url)` or
    `openai.AsyncOpenAI(base_url=emulator.openai_base_url)` at it; any non-empty key works.
    Script it with `set_behavior` / `enqueue`, and assert on `requests` and `disconnects`;
    await `wait_for_request`, `wait_for_finished` and `wait_for_disconnect` rather than
    polling them. `seed` seeds the draws of `Behavior.error_rate`; answers depend only on
    the conversation.

    Only the latest `max_records` requests and disconnects are kept, so a long-running
    emulator stays bounded. The admin endpoints (`modelrouter_server.emulator.admin`) hand
    every recorded prompt to whoever can reach the port, so they are served only with
    `admin=True`: in tests and benchmarks, never in the router's embedded emulator by default.
    """

    def __init__(
        self,
        models: Iterable[EmulatedModel] = DEFAULT_MODELS,
        *,
        seed: int = 0,
        ping_every_tokens: int = 8,
        admin: bool = False,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        self._state = EmulatorState(
            models, seed=seed, ping_every_tokens=ping_every_tokens, max_records=max_records
        )
        self._admin = admin
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (port 0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        self._state.stopping = False
        if any(model.api == "openai" for model in self._state.models.values()):
            # Building the vocabulary takes most of a second: do it once, off the event loop,
            # rather than stall every response in flight when the first OpenAI request lands.
            await asyncio.to_thread(o200k)
        runner = web.AppRunner(
            build_app(self._state, admin=self._admin),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = "127.0.0.1" if host in _UNSPECIFIED_HOSTS else host
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self._url = f"http://{url_host}:{bound_port}"

    async def stop(self) -> None:
        """Stop listening, cancelling the responses still in flight."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.cancel_in_flight()
        await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The Anthropic SDK's `base_url`, e.g. "http://127.0.0.1:PORT"."""
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def openai_base_url(self) -> str:
        """The OpenAI SDK's `base_url`: `base_url` + "/v1"."""
        return self.base_url + "/v1"

    @property
    def models(self) -> tuple[EmulatedModel, ...]:
        """The catalog served."""
        return tuple(self._state.models.values())

    @property
    def max_records(self) -> int:
        """How many requests (and disconnects) are kept."""
        maxlen = self._state.requests.maxlen
        assert maxlen is not None  # the ring is always bounded
        return maxlen

    @property
    def admin(self) -> bool:
        """Whether the admin endpoints are served."""
        return self._admin

    @property
    def requests(self) -> list[RequestRecord]:
        """The latest requests received (at most `max_records`), oldest first; a snapshot,
        cleared by `reset`."""
        return list(self._state.requests)

    @property
    def disconnects(self) -> list[DisconnectRecord]:
        """The latest times a client closed the connection before its response was
        complete (at most `max_records`), oldest first; a snapshot."""
        return list(self._state.disconnects)

    def set_behavior(self, model: str, behavior: Behavior) -> None:
        """Make `behavior` the default for `model` ("*" for every model)."""
        self._state.script.set_default(model, behavior)

    def enqueue(self, model: str, *behaviors: Behavior) -> None:
        """Queue one-shot behaviors for the next requests to `model` ("*": any model)."""
        self._state.script.enqueue(model, behaviors)

    def reset(self) -> None:
        """Clear behaviors, queues and records, and reseed the error-rate RNG."""
        self._state.reset()

    async def wait_for_request(
        self,
        count: int = 1,
        timeout: float = 30.0,  # noqa: ASYNC109  # a guard against a hung test, not a limit
    ) -> list[RequestRecord]:
        """Wait until `count` requests have arrived since the last reset (their bodies read,
        responses possibly still in flight); return the records kept.

        Raises TimeoutError after `timeout` seconds."""
        state = self._state
        await state.wait_until(
            lambda: state.received >= count,
            timeout,
            lambda: f"{state.received} request(s) arrived, expected {count},",
        )
        return self.requests

    async def wait_for_finished(
        self,
        count: int = 1,
        timeout: float = 30.0,  # noqa: ASYNC109  # a guard against a hung test, not a limit
    ) -> list[RequestRecord]:
        """Wait until `count` responses have ended since the last reset, each with its
        `outcome` and `ended_at` set; return the records kept.

        A client can see the last byte of a response before the emulator has recorded how
        it ended: await this before asserting on an `outcome`. Raises TimeoutError after
        `timeout` seconds."""
        state = self._state
        await state.wait_until(
            lambda: state.finished >= count,
            timeout,
            lambda: f"{state.finished} response(s) ended, expected {count},",
        )
        return self.requests

    async def wait_for_disconnect(
        self,
        count: int = 1,
        timeout: float = 30.0,  # noqa: ASYNC109  # a guard against a hung test, not a limit
    ) -> list[DisconnectRecord]:
        """Wait until `count` client disconnects have been recorded since the last reset;
        return the records kept. Raises TimeoutError after `timeout` seconds."""
        state = self._state
        await state.wait_until(
            lambda: state.disconnected >= count,
            timeout,
            lambda: f"{state.disconnected} client disconnect(s), expected {count},",
        )
        return self.disconnects

    async def wait_for_disconnect_of(
        self,
        request_id: str,
        timeout: float = 30.0,  # noqa: ASYNC109  # a guard against a hung test, not a limit
    ) -> DisconnectRecord:
        """Wait until the client of request `request_id` has closed its connection early;
        return that record. Matching by id ignores a request an earlier test abandoned and
        the emulator noticed late. Raises TimeoutError after `timeout` seconds."""

        def found() -> DisconnectRecord | None:
            return next((d for d in self._state.disconnects if d.request_id == request_id), None)

        await self._state.wait_until(
            lambda: found() is not None,
            timeout,
            lambda: f"no client disconnect of {request_id}",
        )
        record = found()
        assert record is not None  # wait_until returned, so it is there
        return record
