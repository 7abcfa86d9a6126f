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


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving both provider APIs and the admin endpoints."""
    # Above Anthropic's own 32 MB limit, so that the emulator answers 413 like the API does.
    app = web.Application(client_max_size=2 * MAX_REQUEST_BYTES)
    anthropic = AnthropicMessages(state.models)
    openai = OpenAIChat(state.models)

    async def messages(request: web.Request) -> web.StreamResponse:
        return await serve_generation(request, anthropic, state)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        return await serve_count_tokens(request, anthropic, state)

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        return await serve_generation(request, openai, state)

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/v1/chat/completions", chat_completions)
    add_admin_routes(app, state)
    return app


class Emulator:
    """A wire-compatible stand-in for the Anthropic Messages and OpenAI Chat Completions
    APIs, served over real HTTP so the official SDKs can talk to it unmodified.

    Point `anthropic.AsyncAnthropic(base_url=emulator.base_url)` or
    `openai.AsyncOpenAI(base_url=emulator.openai_base_url)` at it; any non-empty key works.
    Script it with `set_behavior` / `enqueue`, and assert on `requests` and `disconnects`.
    `seed` seeds the draws of `Behavior.error_rate`; answers depend only on the conversation.
    """

    def __init__(
        self,
        models: Iterable[EmulatedModel] = DEFAULT_MODELS,
        *,
        seed: int = 0,
        ping_every_tokens: int = 8,
    ) -> None:
        self._state = EmulatorState(models, seed=seed, ping_every_tokens=ping_every_tokens)
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
            build_app(self._state),
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
    def requests(self) -> list[RequestRecord]:
        """Every request received, in order (cleared by `reset`)."""
        return self._state.requests

    @property
    def disconnects(self) -> list[DisconnectRecord]:
        """Each time a client closed the connection before its response was complete."""
        return self._state.disconnects

    def set_behavior(self, model: str, behavior: Behavior) -> None:
        """Make `behavior` the default for `model` ("*" for every model)."""
        self._state.script.set_default(model, behavior)

    def enqueue(self, model: str, *behaviors: Behavior) -> None:
        """Queue one-shot behaviors for the next requests to `model` ("*": any model)."""
        self._state.script.enqueue(model, behaviors)

    def reset(self) -> None:
        """Clear behaviors, queues and records, and reseed the error-rate RNG."""
        self._state.reset()

    async def wait_for_disconnect(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109  # the public API promises a timeout argument
    ) -> list[DisconnectRecord]:
        """Wait until `count` client disconnects have been recorded since the last reset;
        return them all. Raises TimeoutError after `timeout` seconds."""
        return await self._state.wait_for_disconnect(count, timeout)
