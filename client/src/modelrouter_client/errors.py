"""Typed exceptions for failed calls, with the google.rpc details the router attaches.

Every client call raises a `ModelRouterError` subclass chosen by the status code
(`InvalidArgumentError`, `NotFoundError`, ...). It is still a `grpc.aio.AioRpcError`
(hence a `grpc.RpcError`), so code that catches those keeps working, and it carries the
details decoded (through grpcio-status): `bad_request` (the fields at fault),
`error_info` (a reason such as MODEL_NOT_FOUND, and metadata such as every attempt) and
`retry_info` (how long to wait before trying again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

Pairs = tuple[tuple[str, str | bytes], ...]


class ModelRouterError(grpc.aio.AioRpcError):
    """A failed call: status code, message and the decoded error details (None where the
    status carries no such detail)."""

    bad_request: error_details_pb2.BadRequest | None
    error_info: error_details_pb2.ErrorInfo | None
    retry_info: error_details_pb2.RetryInfo | None

    def __init__(self, error: grpc.RpcError) -> None:
        code: grpc.StatusCode = error.code()
        details: str | None = error.details()
        # grpc-stubs types a metadatum as an opaque object; at run time it is a pair.
        trailing: Pairs = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
        initial: Pairs = tuple(getattr(error, "initial_metadata", tuple)() or ())
        super().__init__(
            code,
            grpc.aio.Metadata(*initial),
            grpc.aio.Metadata(*trailing),
            details,
            error.debug_error_string() if hasattr(error, "debug_error_string") else None,
        )
        self.bad_request = self.error_info = self.retry_info = None
        try:
            status = rpc_status.from_call(cast(grpc.Call, error))
        except ValueError:
            status = None  # details that contradict the status line are not trusted
        for detail in status.details if status is not None else ():
            for kind, attribute in _DETAIL_KINDS:
                if detail.Is(kind.DESCRIPTOR):
                    message = kind()
                    detail.Unpack(message)
                    setattr(self, attribute, message)

    @property
    def field_violations(self) -> dict[str, str]:
        """Each rejected field's path (as in the request, e.g. `messages[0].content`)
        mapped to what is wrong with it."""
        if self.bad_request is None:
            return {}
        return {v.field: v.description for v in self.bad_request.field_violations}

    @property
    def reason(self) -> str:
        """ErrorInfo's reason (e.g. `MODEL_NOT_FOUND`); empty without an ErrorInfo."""
        return self.error_info.reason if self.error_info is not None else ""

    @property
    def retry_delay_s(self) -> float | None:
        """RetryInfo's delay in seconds, when the router suggests one."""
        if self.retry_info is None:
            return None
        delay = self.retry_info.retry_delay
        return float(delay.seconds + delay.nanos / 1e9)


class InvalidArgumentError(ModelRouterError):
    """INVALID_ARGUMENT: `field_violations` names what to fix."""


class NotFoundError(ModelRouterError):
    """NOT_FOUND: an unknown model or conversation."""


class UnavailableError(ModelRouterError):
    """UNAVAILABLE: every candidate failed, or a store is unreachable; retryable."""


class ResourceExhaustedError(ModelRouterError):
    """RESOURCE_EXHAUSTED: every candidate was rate limited; see `retry_delay_s`."""


class DeadlineExceededError(ModelRouterError):
    """DEADLINE_EXCEEDED: the call's timeout passed."""


class CancelledError(ModelRouterError):
    """CANCELLED: the call was cancelled."""


class InternalError(ModelRouterError):
    """INTERNAL: a bug in the router; the details stay in its log."""


_DETAIL_KINDS = (
    (error_details_pb2.BadRequest, "bad_request"),
    (error_details_pb2.ErrorInfo, "error_info"),
    (error_details_pb2.RetryInfo, "retry_info"),
)
_BY_CODE: dict[grpc.StatusCode, type[ModelRouterError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def from_rpc_error(error: grpc.RpcError) -> ModelRouterError:
    """The typed exception for a failed call (ModelRouterError for other codes)."""
    if isinstance(error, ModelRouterError):
        return error
    code = error.code()
    return _BY_CODE.get(code, ModelRouterError)(error)


@contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise a failed call's grpc.RpcError as its typed ModelRouterError."""
    try:
        yield
    except grpc.RpcError as error:
        if isinstance(error, ModelRouterError) or not hasattr(error, "code"):
            raise
        raise from_rpc_error(error) from error


T = TypeVar("T")


async def typed_stream(events: AsyncIterator[T]) -> AsyncIterator[T]:
    """`events` with a failure raised as its typed ModelRouterError."""
    with typed_errors():
        async for event in events:
            yield event
