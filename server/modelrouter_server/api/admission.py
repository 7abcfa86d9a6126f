"""Admission control and the in-flight register that graceful drain works from.

One server interceptor in front of every ModelRouterService RPC (health and reflection pass
untouched, so a load balancer can always ask):

- Past `admission.max_concurrent_rpcs` RPCs, or `max_concurrent_streams` streams, a new
  call is refused at once with RESOURCE_EXHAUSTED and a google.rpc RetryInfo. Nothing is
  queued: a queue inside the router only hides overload until deadlines fail.
- Past its tenant's `max_concurrent_rpcs` (per server, like the limits above), a call is
  refused with `QuotaExceeded` (RESOURCE_EXHAUSTED, QuotaFailure and RetryInfo, packed by
  the error boundary), so one tenant cannot take every slot.
- While draining (SIGTERM), a new call is refused with UNAVAILABLE and a RetryInfo, so the
  caller goes to another replica instead of seeing "failed to connect".
- When the drain grace runs out, the calls still running are ended with UNAVAILABLE:
  cancelling their work (which closes the provider request, and leaves a conversation turn
  unstored, because the turn is written only after the answer ends).

grpc's own `maximum_concurrent_rpcs` is not used: it sheds without a RetryInfo, and health
checks would count against it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from google.rpc import code_pb2, status_pb2
from modelrouter_server.api.status import refused_status
from modelrouter_server.errors import QuotaExceeded

log = structlog.get_logger(__name__)

_SERVICE_PREFIX = "/modelrouter.v1.ModelRouterService/"

_Context = grpc.aio.ServicerContext[Any, Any]
_Unary = Callable[[Any, _Context], Awaitable[Any]]
_Streaming = Callable[[Any, _Context], AsyncIterator[Any]]

if TYPE_CHECKING:  # generic in grpc-stubs only
    _InterceptorBase = grpc.aio.ServerInterceptor[Any, Any]
else:
    _InterceptorBase = grpc.aio.ServerInterceptor


class Refusal(enum.Enum):
    """Why a call was turned away."""

    RPC_LIMIT = "RPC_LIMIT"
    STREAM_LIMIT = "STREAM_LIMIT"
    DRAINING = "DRAINING"


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The limits of one server (see `AdmissionConfig`)."""

    max_rpcs: int
    max_streams: int
    retry_after_s: float
    tenant_max_rpcs: Mapping[str, int] | None = None
    """Per tenant (absent: no limit of its own)."""


# When only calls in flight stand in the way, a second is a fair wait (as for the
# tenant's concurrent-streams limit).
_TENANT_RETRY_AFTER_S = 1.0


@dataclass(eq=False, slots=True)
class _Call:
    """One admitted RPC: its task, and whether the drain ended it."""

    method: str
    stream: bool
    task: asyncio.Task[Any] | None
    tenant: str = ""
    expired: bool = False
    caller_gone: bool = False
    """Set with `expired` when the task was already being cancelled: grpc cancels a
    handler when its caller goes away, so nobody is left to receive an UNAVAILABLE."""
    in_handler: bool = False
    """True while the task waits inside the handler's own code (not in grpc's send), where
    a cancel unwinds through our code and can be reported as UNAVAILABLE."""
    context: _Context | None = None


_ENDED_BY_DRAIN = "the server shut down before the call finished; retry on another replica"


def refusal_status(refusal: Refusal, message: str, retry_after_s: float) -> status_pb2.Status:
    """The google.rpc.Status of a refused call: ErrorInfo (the reason) and RetryInfo."""
    code = code_pb2.UNAVAILABLE if refusal is Refusal.DRAINING else code_pb2.RESOURCE_EXHAUSTED
    return refused_status(code, refusal.value, message, retry_after_s)


class Admission:
    """Counts the RPCs in flight, admits or refuses new ones, and ends them on drain."""

    def __init__(
        self,
        limits: AdmissionLimits,
        *,
        tenant: Callable[[], str] = str,
        on_tenant_refused: Callable[[str, str], None] = lambda _tenant, _limit: None,
    ) -> None:
        """`tenant` names the caller of the RPC being handled (asked only when a tenant
        limit is configured); `on_tenant_refused(tenant, limit)` counts a tenant's refusal."""
        self.limits = limits
        self._tenant = tenant
        self._on_tenant_refused = on_tenant_refused
        self._per_tenant: dict[str, int] = {}
        self._calls: set[_Call] = set()
        self._streams = 0
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.refused: dict[Refusal, int] = dict.fromkeys(Refusal, 0)

    @property
    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def draining(self) -> bool:
        return self._draining

    def _check(self, stream: bool) -> Refusal | None:
        if self._draining:
            return Refusal.DRAINING
        if len(self._calls) >= self.limits.max_rpcs:
            return Refusal.RPC_LIMIT
        if stream and self._streams >= self.limits.max_streams:
            return Refusal.STREAM_LIMIT
        return None

    def _enter(self, method: str, stream: bool, context: _Context) -> _Call | Refusal:
        refusal = self._check(stream)
        if refusal is not None:
            self.refused[refusal] += 1
            return refusal
        tenant = self._tenant() if self.limits.tenant_max_rpcs else ""
        self._check_tenant(tenant)
        call = _Call(method, stream, asyncio.current_task(), tenant=tenant, context=context)
        self._calls.add(call)
        self._streams += stream
        self._per_tenant[tenant] = self._per_tenant.get(tenant, 0) + 1
        self._idle.clear()
        for count, waiter in self._waiters:
            if len(self._calls) >= count and not waiter.done():
                waiter.set_result(None)
        return call

    def _check_tenant(self, tenant: str) -> None:
        limit = (self.limits.tenant_max_rpcs or {}).get(tenant)
        in_flight = self._per_tenant.get(tenant, 0)
        if limit is not None and in_flight >= limit:
            self._on_tenant_refused(tenant, "max_concurrent_rpcs")
            raise QuotaExceeded(
                tenant,
                "max_concurrent_rpcs",
                f"{in_flight} calls in flight on this server, the limit is {limit}",
                _TENANT_RETRY_AFTER_S,
            )

    def _leave(self, call: _Call) -> None:
        self._calls.discard(call)
        self._streams -= call.stream
        left = self._per_tenant[call.tenant] - 1
        if left:
            self._per_tenant[call.tenant] = left
        else:
            del self._per_tenant[call.tenant]
        if not self._calls:
            self._idle.set()

    async def wait_for_in_flight(self, count: int) -> None:
        """Return once at least `count` admitted calls are running."""
        if len(self._calls) >= count:
            return
        entry = (count, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        finally:
            self._waiters.remove(entry)

    def start_draining(self) -> None:
        """Refuse every new call from now on (UNAVAILABLE)."""
        self._draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no admitted call runs, at most `timeout_s`; True if none runs."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def expire(self) -> int:
        """End every call still running (the drain grace is over); returns how many."""
        calls = list(self._calls)
        for call in calls:
            call.expired = True
            if call.task is not None:
                call.caller_gone = call.task.cancelling() > 0
                if not call.caller_gone and call.context is not None:
                    # A stream waiting in grpc's send (its client stopped reading) cannot
                    # be aborted: its trailers would queue behind the unread messages. It
                    # ends when the server stops, UNAVAILABLE "Cancelling all calls" at the
                    # client; set here, the code is what the log and metrics count too.
                    call.context.set_code(grpc.StatusCode.UNAVAILABLE)
                    call.context.set_details(_ENDED_BY_DRAIN)
                call.task.cancel("drain grace expired")
        return len(calls)

    def _message(self, refusal: Refusal) -> str:
        if refusal is Refusal.DRAINING:
            return "the server is shutting down; retry on another replica"
        if refusal is Refusal.STREAM_LIMIT:
            return (
                f"the server is at its limit of {self.limits.max_streams} concurrent streams; "
                "retry later"
            )
        return f"the server is at its limit of {self.limits.max_rpcs} concurrent RPCs; retry later"

    async def _refuse(self, context: _Context, refusal: Refusal, method: str) -> None:
        message = self._message(refusal)
        status = refusal_status(refusal, message, self.limits.retry_after_s)
        log.info("rpc_refused", rpc=method.removeprefix(_SERVICE_PREFIX), reason=refusal.value)
        code = (
            grpc.StatusCode.UNAVAILABLE
            if refusal is Refusal.DRAINING
            else grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        await _abort(context, code, message, status)

    async def _expired(self, context: _Context, call: _Call) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        status = refusal_status(Refusal.DRAINING, _ENDED_BY_DRAIN, self.limits.retry_after_s)
        log.info("rpc_ended_by_drain", rpc=call.method.removeprefix(_SERVICE_PREFIX))
        await _abort(context, grpc.StatusCode.UNAVAILABLE, _ENDED_BY_DRAIN, status)

    def guard_unary(self, method: str, behavior: _Unary) -> _Unary:
        async def guarded(request: Any, context: _Context) -> Any:
            entered = self._enter(method, stream=False, context=context)
            if isinstance(entered, Refusal):
                await self._refuse(context, entered, method)
                return None  # pragma: no cover  # abort raises
            entered.in_handler = True
            try:
                return await behavior(request, context)
            except asyncio.CancelledError:
                # Aborting a call whose caller is gone fails inside grpc (a bug in the log).
                if not entered.expired or entered.caller_gone:
                    raise
                await self._expired(context, entered)
            finally:
                self._leave(entered)

        return guarded

    def guard_stream(self, method: str, behavior: _Streaming) -> _Streaming:
        async def guarded(request: Any, context: _Context) -> AsyncIterator[Any]:
            entered = self._enter(method, stream=True, context=context)
            if isinstance(entered, Refusal):
                await self._refuse(context, entered, method)
                return
            responses = behavior(request, context)
            try:
                while True:
                    entered.in_handler = True
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError:
                        if not entered.expired or entered.caller_gone:
                            raise
                        await self._expired(context, entered)
                    finally:
                        entered.in_handler = False
                    yield response
            finally:
                try:
                    aclose = getattr(responses, "aclose", None)
                    if aclose is not None:
                        await aclose()
                finally:
                    self._leave(entered)

        return guarded


async def _abort(
    context: _Context, code: grpc.StatusCode, message: str, status: status_pb2.Status
) -> None:
    """End the call with `code` and its rich `status`; raises AbortError, as
    `context.abort` does, or CancelledError when the caller had already left."""
    try:
        await context.abort(
            code,
            message,
            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
        )
    except grpc.aio.InternalError as exc:
        # grpc fails the status when its core ended the call first: the caller left and
        # the event loop had not yet cancelled this handler. Nobody got our status: the
        # call ended as cancelled, not as a bug of ours (INTERNAL).
        log.info("rpc_status_not_sent", code=code.name, reason=str(exc))
        context.set_code(grpc.StatusCode.CANCELLED)
        raise asyncio.CancelledError("the caller left before its status was sent") from None


@dataclass(slots=True)
class AdmissionInterceptor(_InterceptorBase):
    """Puts `admission` in front of every ModelRouterService RPC."""

    admission: Admission

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(_SERVICE_PREFIX):
            return handler
        # grpc-stubs type handlers as synchronous; under grpc.aio they are coroutine
        # functions and async generator functions.
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self.admission.guard_unary(method, cast(_Unary, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self.admission.guard_stream(method, cast(_Streaming, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs today; a future one passes unguarded
