"""Identity at the edge: an interceptor that turns an API key into a tenant.

Every RPC except the health service must carry a configured tenant's key, as
`authorization: Bearer <key>` or `x-api-key: <key>`. A missing key and a wrong key get the
same UNAUTHENTICATED answer, decided before any handler runs; the key itself is never
logged, counted or echoed (only which tenant it belongs to travels on, also onto the RPC's
log lines as `tenant`). Handlers read the
caller's tenant with `current_tenant`.

It runs inside the error boundary, so a refusal is logged and counted like any other
status. With `auth.mode = "none"` it is not installed and every caller is the default
tenant.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import grpc
import structlog
from grpc_health.v1 import health
from modelrouter_server.tenancy.keys import KeyRing

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # the stubs are generic, the runtime classes are not
    Handler = grpc.RpcMethodHandler
    _Interceptor = grpc.aio.ServerInterceptor

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Awaitable[Any]]
StreamBehavior = Callable[[Any, Context], AsyncGenerator[Any, None]]

UNAUTHENTICATED_MESSAGE = (
    "missing or invalid API key: send it as `authorization: Bearer <key>` metadata"
)
_OPEN_PREFIX = f"/{health.SERVICE_NAME}/"

_TENANT: ContextVar[str | None] = ContextVar("modelrouter_tenant", default=None)


def current_tenant(default: str) -> str:
    """The tenant of the RPC being handled; `default` when no key was asked for."""
    tenant = _TENANT.get()
    return default if tenant is None else tenant


def presented_key(metadata: Any) -> str | None:
    """The API key in the call's metadata, if any (`authorization: Bearer`, `x-api-key`)."""
    bearer: str | None = None
    api_key: str | None = None
    for key, value in metadata or ():
        if not isinstance(value, str):
            continue
        if key == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif key == "x-api-key" and value.strip():
            api_key = value.strip()
    return bearer or api_key


class ApiKeyAuth(_Interceptor):
    """Refuses every RPC but health without a configured key; tags the rest with the
    key's tenant."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_OPEN_PREFIX):
            return handler
        key = presented_key(details.invocation_metadata)
        tenant = self._keys.tenant_for(key) if key is not None else None
        del key  # nothing below may see it
        if tenant is None:
            return _refusal(handler)
        return _as_tenant(handler, tenant)


async def _refuse(context: Context) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)


def _refusal(handler: Handler) -> Handler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED."""

    async def unary(_request: Any, context: Context) -> Any:
        await _refuse(context)

    async def streaming(_request: Any, context: Context) -> AsyncIterator[Any]:
        await _refuse(context)
        yield None  # pragma: no cover  # abort raised; this only makes it a generator

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)


def _enter(tenant: str) -> None:
    """Mark the RPC being handled as `tenant`'s: for the handlers, and on its log lines
    (the boundary's included). Its own task's context, so no other RPC sees it."""
    _TENANT.set(tenant)
    structlog.contextvars.bind_contextvars(tenant=tenant)


def _as_tenant(handler: Handler, tenant: str) -> Handler:
    """`handler`, run with `current_tenant()` answering `tenant`."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        inner = cast(UnaryBehavior, handler.unary_unary)

        async def unary(request: Any, context: Context) -> Any:
            _enter(tenant)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
    if handler.unary_stream is not None:
        inner_stream = cast(StreamBehavior, handler.unary_stream)

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            _enter(tenant)
            async with aclosing(inner_stream(request, context)) as responses:
                async for response in responses:
                    yield response

        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    # Client-streaming RPCs (reflection) need only the check, not the tenant.
    return handler
