"""How one request is served, whichever API it speaks.

The API modules (`anthropic_api`, `openai_api`) implement `Dialect`: they know their
headers, validation and JSON shapes. This module does what both share: recording the
request, the scripted latency and errors, pacing a stream and injecting its faults, and
noticing when the client goes away.

A client disconnect reaches the handler in one of two ways: aiohttp cancels the handler
task when the connection is lost (the runner is built with `handler_cancellation=True`), or
a write fails because the transport is closing. Both are recorded once, with the time they
were noticed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from aiohttp import web

from modelrouter_server.emulator.behavior import Behavior, BehaviorScript
from modelrouter_server.emulator.errors import WireError
from modelrouter_server.emulator.models import Api, EmulatedModel
from modelrouter_server.emulator.prompt_cache import PromptCache
from modelrouter_server.emulator.records import AuthScheme, DisconnectRecord, RequestRecord
from modelrouter_server.emulator.sse import StreamPlan


class Reply(Protocol):
    """A validated request's answer, ready to be sent whole or streamed."""

    @property
    def stream(self) -> bool: ...

    @property
    def paced_tokens(self) -> int:
        """Tokens a stream would pace (thinking and text), to time a non-streaming reply."""
        ...

    def json_body(self) -> dict[str, object]: ...

    def stream_plan(self, ping_every_tokens: int) -> StreamPlan: ...


class Dialect(Protocol):
    """What differs between the provider APIs."""

    @property
    def api(self) -> Api: ...

    @property
    def request_id_header(self) -> str: ...

    def auth_scheme(self, headers: Mapping[str, str]) -> AuthScheme | None: ...

    def check_request(
        self, headers: Mapping[str, str], auth: AuthScheme | None, size: int
    ) -> None: ...

    def invalid_body(self) -> WireError: ...

    def prepare(self, body: Mapping[str, object], behavior: Behavior) -> Reply: ...

    def scripted_error(
        self, status: int, error_type: str | None, model: str, retry_after_s: float | None
    ) -> WireError: ...

    def error_body(self, error: WireError, request_id: str) -> dict[str, object]: ...

    def rate_limit_headers(self, retry_after_s: float | None) -> dict[str, str]: ...


class CountingDialect(Dialect, Protocol):
    """A dialect with a token-counting endpoint."""

    def count_tokens(self, body: Mapping[str, object]) -> dict[str, object]: ...


# Enough for any test or benchmark to look back over, small enough that a long-running
# emulator does not grow: 1,000 records of 20 KB bodies hold about 20 MB.
DEFAULT_MAX_RECORDS = 1000


class _Waiter:
    """A test waiting until `ready()` holds."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class EmulatorState:
    """Everything the handlers share: the catalog, the script, and the records.

    `requests` and `disconnects` keep the latest `max_records` each (a ring); the counters
    `received`, `finished` and `disconnected` count every event since the last reset, so
    waits for the n-th event still work after the ring has wrapped.
    """

    def __init__(
        self,
        models: Iterable[EmulatedModel],
        *,
        seed: int,
        ping_every_tokens: int,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        self.models = {model.id: model for model in models}
        self.script = BehaviorScript()
        self.ping_every_tokens = ping_every_tokens
        self.prompt_cache = PromptCache()
        self.requests: deque[RequestRecord] = deque(maxlen=max_records)
        self.disconnects: deque[DisconnectRecord] = deque(maxlen=max_records)
        self.received = 0
        self.finished = 0
        self.disconnected = 0
        self.stopping = False
        self._seed = seed
        self._rng = random.Random(seed)
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._waiters: list[_Waiter] = []

    def fails(self, error_rate: float) -> bool:
        """Whether a request scripted to fail at `error_rate` fails this time."""
        if error_rate >= 1.0:
            return True
        return error_rate > 0.0 and self._rng.random() < error_rate

    def reset(self) -> None:
        self.script.clear()
        self.prompt_cache.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.received = self.finished = self.disconnected = 0
        self._rng = random.Random(self._seed)

    def note_request(self, record: RequestRecord) -> None:
        self.requests.append(record)
        self.received += 1
        self._wake()

    def note_finished(self) -> None:
        """A response ended (its record's `outcome` and `ended_at` are set)."""
        self.finished += 1
        self._wake()

    def note_disconnect(self, record: DisconnectRecord) -> None:
        self.disconnects.append(record)
        self.disconnected += 1
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.future.done() and waiter.ready():
                waiter.future.set_result(None)

    async def wait_until(
        self,
        ready: Callable[[], bool],
        timeout: float,  # noqa: ASYNC109  # the public API promises a timeout argument
        describe: Callable[[], str],
    ) -> None:
        """Return once `ready()` holds, checked after every recorded event; TimeoutError
        (with `describe()` in its message) after `timeout` seconds."""
        if ready():
            return
        waiter = _Waiter(ready)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter.future, timeout)
        except TimeoutError:
            raise TimeoutError(f"{describe()} after {timeout} s") from None
        finally:
            self._waiters.remove(waiter)

    def track(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.add(task)

    def untrack(self, task: asyncio.Task[Any]) -> None:
        self._in_flight.discard(task)

    def cancel_in_flight(self) -> None:
        """Cancel the handlers still running (stalls last an hour) so shutdown is quick."""
        self.stopping = True
        for task in self._in_flight:
            task.cancel()


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _token_interval(behavior: Behavior) -> float:
    return 1.0 / behavior.tokens_per_second if behavior.tokens_per_second > 0 else 0.0


def _parse_json(raw: bytes) -> object:
    try:
        parsed: object = json.loads(raw)
    except ValueError:
        return None
    return parsed


async def serve_generation(
    request: web.Request, dialect: Dialect, state: EmulatorState
) -> web.StreamResponse:
    """Serve a message / chat completion request."""
    exchange = await _Exchange.receive(request, dialect, state)
    return await exchange.run(exchange.generate)


async def serve_count_tokens(
    request: web.Request, dialect: CountingDialect, state: EmulatorState
) -> web.StreamResponse:
    """Serve a token-counting request; behaviors do not apply to it."""
    exchange = await _Exchange.receive(request, dialect, state)

    async def count(body: Mapping[str, object]) -> web.StreamResponse:
        counted = dialect.count_tokens(body)
        exchange.record.outcome = "ok"
        return web.json_response(counted, headers=exchange.headers(None))

    return await exchange.run(count)


class _Exchange:
    """One request, from its body to the last byte of its response."""

    def __init__(
        self,
        request: web.Request,
        dialect: Dialect,
        state: EmulatorState,
        raw_body: bytes,
        record: RequestRecord,
    ) -> None:
        self.request = request
        self.dialect = dialect
        self.state = state
        self.raw_body = raw_body
        self.record = record
        self.tokens_sent = 0

    @classmethod
    async def receive(
        cls, request: web.Request, dialect: Dialect, state: EmulatorState
    ) -> _Exchange:
        """Read the request and record it."""
        raw_body = await request.read()
        body = _parse_json(raw_body)
        fields: Mapping[str, object] = body if isinstance(body, dict) else {}
        model = fields.get("model")
        record = RequestRecord(
            id="req_" + secrets.token_hex(12),
            path=request.path,
            api=dialect.api,
            model=model if isinstance(model, str) else "",
            stream=fields.get("stream") is True,
            body=body,
            auth=dialect.auth_scheme(request.headers),
            started_at=time.monotonic(),
        )
        state.note_request(record)
        return cls(request, dialect, state, raw_body, record)

    async def run(
        self, respond: Callable[[Mapping[str, object]], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Check the request and answer it with `respond` or an error."""
        task = asyncio.current_task()
        assert task is not None  # aiohttp runs every handler in a task
        self.state.track(task)
        try:
            try:
                self.dialect.check_request(
                    self.request.headers, self.record.auth, len(self.raw_body)
                )
                if not isinstance(self.record.body, dict):
                    raise self.dialect.invalid_body()
                return await respond(self.record.body)
            except WireError as error:
                return self._error(error, None)
        except asyncio.CancelledError:
            if self.state.stopping:
                self.record.outcome = self.record.outcome or "server_stopped"
            else:
                self._client_gone()
            raise
        finally:
            self.record.ended_at = time.monotonic()
            self.state.untrack(task)
            self.state.note_finished()

    async def generate(self, body: Mapping[str, object]) -> web.StreamResponse:
        behavior = self.state.script.take(self.record.model)
        await _sleep(behavior.latency_s)
        if behavior.error_status is not None and self.state.fails(behavior.error_rate):
            error = self.dialect.scripted_error(
                behavior.error_status,
                behavior.error_type,
                self.record.model,
                behavior.retry_after_s,
            )
            return self._error(error, behavior.retry_after_s)
        reply = self.dialect.prepare(body, behavior)
        if reply.stream:
            return await self._stream(reply, behavior)
        return await self._unary(reply, behavior)

    def headers(self, retry_after_s: float | None) -> dict[str, str]:
        headers = {
            self.dialect.request_id_header: self.record.id,
            **self.dialect.rate_limit_headers(retry_after_s),
        }
        if retry_after_s is not None:
            headers["retry-after"] = str(math.ceil(retry_after_s))
            headers["retry-after-ms"] = str(round(retry_after_s * 1000))
        return headers

    def _error(self, error: WireError, retry_after_s: float | None) -> web.StreamResponse:
        self.record.outcome = f"error:{error.status}"
        return web.json_response(
            self.dialect.error_body(error, self.record.id),
            status=error.status,
            headers=self.headers(retry_after_s),
        )

    def _client_gone(self) -> None:
        if self.record.outcome is not None:
            return
        self.record.outcome = "client_disconnected"
        self.state.note_disconnect(
            DisconnectRecord(
                request_id=self.record.id,
                model=self.record.model,
                at=time.monotonic(),
                tokens_sent=self.tokens_sent,
            )
        )

    def drop(self, response: web.StreamResponse) -> web.StreamResponse:
        self.record.outcome = "dropped"
        transport = self.request.transport
        if transport is not None:
            # abort(), not close(): the client must see the body end mid-message.
            transport.abort()
        return response

    async def _unary(self, reply: Reply, behavior: Behavior) -> web.StreamResponse:
        await _sleep(behavior.ttft_s + _token_interval(behavior) * max(reply.paced_tokens - 1, 0))
        if behavior.drop_after_tokens is not None:
            return self.drop(web.Response())
        outcome = "ok"
        if behavior.stall_after_tokens is not None:
            await _sleep(behavior.stall_s)
            outcome = "stalled"
        self.record.outcome = outcome
        return web.json_response(reply.json_body(), headers=self.headers(None))

    async def _stream(self, reply: Reply, behavior: Behavior) -> web.StreamResponse:
        plan = reply.stream_plan(self.state.ping_every_tokens)
        response = web.StreamResponse(
            headers={
                **self.headers(None),
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        faults = _Faults(behavior)
        interval = _token_interval(behavior)
        try:
            await response.prepare(self.request)
            for payload in plan.head:
                await response.write(payload)
            await _sleep(behavior.ttft_s)
            paced = 0
            for frame in plan.body:
                if frame.kind == "text" and await faults.fire(self, response, plan):
                    return response
                if frame.kind != "meta":
                    if paced:
                        await _sleep(interval)
                    paced += 1
                await response.write(frame.payload)
                if frame.kind == "text":
                    self.tokens_sent += 1
                    self.record.tokens_sent = self.tokens_sent
            if await faults.fire(self, response, plan, at_end=True):
                return response
            for payload in plan.tail:
                await response.write(payload)
            await response.write_eof()
        except ConnectionResetError:
            self._client_gone()
            return response
        self.record.outcome = "stalled" if faults.stalled else "ok"
        return response


class _Faults:
    """The mid-stream faults still to fire, in the order they are checked."""

    def __init__(self, behavior: Behavior) -> None:
        self.behavior = behavior
        self.stalled = False
        candidates = (
            ("stall", behavior.stall_after_tokens),
            ("error_event", behavior.error_event_after_tokens),
            ("drop", behavior.drop_after_tokens),
            ("truncate", behavior.truncate_after_tokens),
        )
        self.pending = [(name, after) for name, after in candidates if after is not None]

    async def fire(
        self,
        exchange: _Exchange,
        response: web.StreamResponse,
        plan: StreamPlan,
        *,
        at_end: bool = False,
    ) -> bool:
        """Fire the faults due now; True when one of them ended the response."""
        due = [f for f in self.pending if at_end or exchange.tokens_sent >= f[1]]
        for fault in due:
            self.pending.remove(fault)
            name = fault[0]
            if name == "stall":
                await _sleep(self.behavior.stall_s)
                self.stalled = True
            elif name == "error_event":
                await response.write(plan.error_event)
                await response.write_eof()
                exchange.record.outcome = "error_event"
                return True
            elif name == "drop":
                exchange.drop(response)
                return True
            else:
                await response.write_eof()
                exchange.record.outcome = "truncated"
                return True
        return False
