"""The error boundary: one interceptor in front of every ModelRouterService RPC.

It is the outermost interceptor, so whatever happens inside it (a handler's answer, a
domain error, a bug, the caller cancelling, an inner interceptor refusing the call) ends
as exactly one log line and one `Metrics.observe`, both from one `RequestSummary`:

- requests are decoded here, not by grpc's default deserializer: bytes that are not a
  valid message of the RPC's type end as INVALID_ARGUMENT "request is not a valid
  modelrouter.v1.<Type>" instead of UNKNOWN; bytes over `max_request_bytes` are not decoded
  at all and end as RESOURCE_EXHAUSTED naming that limit (grpc's own receive limit sits a
  little above it, so this check answers first, with a message the caller can act on);
- a large request (`offload.OFF_LOOP_BYTES` or more) is decoded in a worker thread, and its
  reply encoded there too, so that no other RPC waits for either (grpc would do both on the
  loop thread); a handler whose reply is large for another reason hands grpc the reply
  already encoded (bytes, passed on as they are);
- a `RouterError` leaves with its status and details from `error_facts.FACTS`; anything else
  is a bug: INTERNAL "internal error" to the caller, the traceback in the log only;
- an RPC whose deadline passed is DEADLINE_EXCEEDED, as its caller sees it; one the
  caller cancelled (or went away from) is CANCELLED;
- an RPC an inner interceptor aborted keeps the status it was given.

Handlers tell the boundary what it cannot see with `report_request_id` and
`report_answer`; stream timings (time to first token, gaps between deltas) the boundary
measures itself on the messages it passes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from google.protobuf import descriptor_pool
from google.protobuf.message import Message
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_server.api.offload import OFF_LOOP_BYTES
from modelrouter_server.api.status import to_status
from modelrouter_server.attempts import NoCandidates
from modelrouter_server.error_facts import facts_for
from modelrouter_server.errors import MalformedRequest, RequestTooLarge
from modelrouter_server.observability import Metrics
from modelrouter_server.observability.summary import Answer, RequestSummary

log = structlog.get_logger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["ModelRouterService"]
_PREFIX = f"/{SERVICE.full_name}/"

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncGenerator[Any, None]]

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the stubs are generic, the runtime classes are not
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.aio.ServerInterceptor


@dataclass(slots=True)
class _Call:
    """What the boundary learns about one RPC while it runs."""

    rpc: str
    started: float
    request_id: str = ""
    answer: Answer | None = None
    first_token: float | None = None
    last_token: float | None = None
    model: str = ""
    large: bool = False
    """The request or the reply is large: the reply is encoded off the loop thread."""


_CURRENT: ContextVar[_Call | None] = ContextVar("modelrouter_call", default=None)


def report_request_id(request_id: str) -> None:
    """The request id of the RPC being handled, for its log line (also when it fails)."""
    call = _CURRENT.get()
    if call is not None:
        call.request_id = request_id


def large_request() -> bool:
    """Whether the request of the RPC being handled was large (decoded off the loop): work
    proportional to its size belongs off the loop too."""
    call = _CURRENT.get()
    return call is not None and call.large


def report_answer(answer: Answer) -> None:
    """Who answered the RPC being handled and what it took."""
    call = _CURRENT.get()
    if call is not None:
        call.answer = answer


class _Undecodable:
    """What the boundary's deserializer returns for bytes that do not decode."""


_UNDECODABLE = _Undecodable()


@dataclass(frozen=True, slots=True)
class _Undecoded:
    """A request too large to decode on the loop thread: the handler decodes it in a worker."""

    data: bytes


@dataclass(frozen=True, slots=True)
class _TooLarge:
    """A request over `max_request_bytes`: never decoded, refused by the handler."""

    size: int


Parse = Callable[[bytes], Any]


def _parsed(parse: Parse, data: bytes) -> Any:
    try:
        return parse(data)
    except Exception:  # DecodeError (bad wire format, invalid UTF-8, nesting too deep)
        return _UNDECODABLE


def _decoder(parse: Parse | None, max_bytes: int) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        if parse is None:
            return data
        if len(data) > max_bytes:
            return _TooLarge(len(data))
        if len(data) >= OFF_LOOP_BYTES:
            return _Undecoded(data)
        return _parsed(parse, data)

    return decode


async def _decoded(
    request: Any, parse: Parse | None, call: _Call, type_name: str, max_bytes: int
) -> Any:
    """The request, decoded in a worker thread if the deserializer left it to the handler;
    raises MalformedRequest or RequestTooLarge for what the deserializer refused."""
    if isinstance(request, _TooLarge):
        raise RequestTooLarge(type_name, request.size, max_bytes)
    if isinstance(request, _Undecodable):
        raise MalformedRequest(type_name)
    if not isinstance(request, _Undecoded) or parse is None:
        return request
    call.large = True
    decoded = await asyncio.to_thread(_parsed, parse, request.data)
    if isinstance(decoded, _Undecodable):
        raise MalformedRequest(type_name)
    return decoded


def _unencoded(response: Any) -> bool:
    """A reply grpc still has to serialize (a handler may hand over bytes it encoded)."""
    return response is not None and not isinstance(response, bytes)


def _encoder(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """grpc's serializer, passing on a reply the handler already encoded off the loop."""
    if serialize is None:
        return None

    def encode(response: Any) -> bytes:
        if isinstance(response, bytes):
            return response
        return serialize(response)

    return encode


class ErrorBoundary(_Interceptor):
    """Logs and counts every ModelRouterService RPC once and maps every error to a status."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        max_request_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._max_request_bytes = max_request_bytes
        self._clock = clock

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        method_path: str = details.method
        rpc = method_path.removeprefix(_PREFIX)
        method = SERVICE.methods_by_name.get(rpc) if method_path.startswith(_PREFIX) else None
        if method is None:  # health, reflection: not ours to count
            return await continuation(details)
        type_name = method.input_type.full_name
        request_class = _message_class(type_name)
        try:
            handler = await continuation(details)
        except Exception as exc:  # an inner interceptor failed: still one status, logged
            refused = exc

            async def refuse(_request: Any, _context: Context) -> Any:
                raise refused

            handler = _handler(method.server_streaming, refuse, request_class.FromString)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED
            return handler
        parse = handler.request_deserializer
        decode = _decoder(parse, self._max_request_bytes)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(rpc, type_name, cast(StreamBehavior, handler.unary_stream), parse),
                request_deserializer=decode,
                response_serializer=handler.response_serializer,
            )
        serialize = handler.response_serializer
        return grpc.unary_unary_rpc_method_handler(
            self._unary(rpc, type_name, cast(UnaryBehavior, handler.unary_unary), parse, serialize),
            request_deserializer=decode,
            response_serializer=_encoder(serialize),
        )

    def _unary(
        self,
        rpc: str,
        type_name: str,
        behavior: UnaryBehavior,
        parse: Parse | None,
        serialize: Callable[[Any], bytes] | None,
    ) -> UnaryBehavior:
        async def handle(request: Any, context: Context) -> Any:
            call = _Call(rpc=rpc, started=self._clock())
            _CURRENT.set(call)
            try:
                request = await _decoded(request, parse, call, type_name, self._max_request_bytes)
                response = await behavior(request, context)
                if call.large and serialize is not None and _unencoded(response):
                    response = await asyncio.to_thread(serialize, response)
            except BaseException as exc:
                await self._failed(call, exc, context)
                raise
            self._succeeded(call, context, deferred=True)
            return response

        return handle

    def _stream(
        self, rpc: str, type_name: str, behavior: StreamBehavior, parse: Parse | None
    ) -> StreamBehavior:
        async def handle(request: Any, context: Context) -> AsyncGenerator[Any, None]:
            call = _Call(rpc=rpc, started=self._clock())
            _CURRENT.set(call)
            try:
                with self._metrics.track_stream():
                    request = await _decoded(
                        request, parse, call, type_name, self._max_request_bytes
                    )
                    async with aclosing(behavior(request, context)) as responses:
                        async for response in responses:
                            self._timed(call, response)
                            yield response
            except BaseException as exc:
                await self._failed(call, exc, context)
                raise
            self._succeeded(call, context)

        return handle

    def _timed(self, call: _Call, response: Any) -> None:
        """Time to first token and the gaps between deltas, from the messages sent."""
        if not isinstance(response, pb.GenerateStreamResponse):
            return
        kind = response.WhichOneof("event")
        if kind == "start":
            call.model = response.start.model
        elif kind == "resume":
            call.model = response.resume.model
        elif kind == "delta":
            now = self._clock()
            if call.first_token is None:
                call.first_token = now
            elif call.last_token is not None:
                self._metrics.observe_inter_token(call.model, now - call.last_token)
            call.last_token = now

    def _succeeded(self, call: _Call, context: Context, *, deferred: bool = False) -> None:
        """Log and count an RPC that returned. `deferred`: once the event loop has sent
        the response, which grpc starts when the handler returns; the caller waits for
        neither the line nor the metrics (a tenth of a unary call's CPU)."""
        # A handler may set a status without raising; then that is how the RPC ended.
        code = context.code() or grpc.StatusCode.OK
        error = "" if code is grpc.StatusCode.OK else context.details() or ""
        if deferred:
            asyncio.get_running_loop().call_soon(partial(self._finish, call, code, error=error))
        else:
            self._finish(call, code, error=error)

    async def _failed(self, call: _Call, exc: BaseException, context: Context) -> None:
        """Log and count a failed RPC; abort it with its status unless it already ended
        (cancelled, or aborted by an inner interceptor: then the caller re-raises)."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            code = _ended_by(context)
            self._finish(call, code, error="" if code is _CANCELLED else context.details() or "")
            return
        if isinstance(exc, grpc.aio.AbortError):
            code = context.code() or grpc.StatusCode.UNKNOWN
            self._finish(call, code, error=context.details() or "")
            return
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: let them go
            return
        facts = facts_for(exc)
        status = to_status(exc)
        attempts = exc.attempts if isinstance(exc, NoCandidates) else ()
        self._finish(
            call,
            facts.status,
            error=status.message,
            attempts=attempts,
            level=facts.log_level,
            exc_info=exc if facts.status is grpc.StatusCode.INTERNAL else None,
        )
        await context.abort(
            facts.status,
            status.message,
            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
        )

    def _finish(
        self,
        call: _Call,
        code: grpc.StatusCode,
        *,
        error: str = "",
        attempts: tuple[Any, ...] = (),
        level: str = "info",
        exc_info: BaseException | None = None,
    ) -> None:
        summary = RequestSummary.of(
            call.rpc,
            code,
            self._clock() - call.started,
            request_id=call.request_id,
            answer=call.answer,
            attempts=attempts,
            ttft_s=None if call.first_token is None else call.first_token - call.started,
            error=error,
        )
        fields = summary.log_fields()
        if exc_info is not None:
            fields["exc_info"] = exc_info
        getattr(log, level)("request_done", **fields)
        self._metrics.observe(summary)


# The caller's deadline and ours are the same instant on two clocks, the request's transit
# apart: a cancel that arrives this close to our deadline is the caller's deadline passing.
_DEADLINE_SLACK_S = 0.05


_CANCELLED = grpc.StatusCode.CANCELLED


def _ended_by(context: Context) -> grpc.StatusCode:
    """How a call that stopped under us ended: the code an inner interceptor set before
    cancelling it (the drain: UNAVAILABLE), its deadline passed (as the caller sees it),
    or the caller really cancelled it."""
    set_code = context.code()
    if set_code is not None and set_code is not grpc.StatusCode.OK:
        return set_code
    remaining = context.time_remaining()
    if remaining is not None and remaining <= _DEADLINE_SLACK_S:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _message_class(full_name: str) -> type[Message]:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    cls: type[Message] = getattr(pb, descriptor.name)
    return cls


def _handler(
    server_streaming: bool, behavior: UnaryBehavior, decode: Callable[[bytes], Any]
) -> Handler:
    if server_streaming:

        async def stream(request: Any, context: Context) -> AsyncGenerator[Any, None]:
            await behavior(request, context)
            yield None  # pragma: no cover  # behavior always raises

        return grpc.unary_stream_rpc_method_handler(stream, request_deserializer=decode)
    return grpc.unary_unary_rpc_method_handler(behavior, request_deserializer=decode)
