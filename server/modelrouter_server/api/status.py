"""The one table from domain errors to gRPC status, and rich error details.

Every error a handler lets out goes through `to_status`: a known domain error gets its
code from `STATUS_TABLE`; anything else is a bug, reported as INTERNAL (never UNKNOWN)
with a message that leaks nothing about its cause.
"""

from __future__ import annotations

import re

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from modelrouter_server import errors
from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome

# Ordered most specific first: the first class an exception is an instance of wins.
STATUS_TABLE: tuple[tuple[type[errors.RouterError], grpc.StatusCode], ...] = (
    (errors.ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.RequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ConversationNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.StoreError, grpc.StatusCode.UNAVAILABLE),
    # A concurrency conflict the caller resolves by repeating the call (which replays).
    (errors.TurnAlreadyRecorded, grpc.StatusCode.ABORTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ContextWindowExceeded, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidProviderRequest, grpc.StatusCode.INVALID_ARGUMENT),
    # The router's own credentials or config are at fault, not the caller's.
    (errors.AuthenticationFailed, grpc.StatusCode.INTERNAL),
    (errors.PermissionDenied, grpc.StatusCode.INTERNAL),
    (errors.UpstreamModelNotFound, grpc.StatusCode.INTERNAL),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Overloaded, grpc.StatusCode.UNAVAILABLE),
    (errors.ServerError, grpc.StatusCode.UNAVAILABLE),
    (errors.ProviderTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ProviderConnectionError, grpc.StatusCode.UNAVAILABLE),
    (errors.StreamInterrupted, grpc.StatusCode.UNAVAILABLE),
    (errors.ProviderError, grpc.StatusCode.UNAVAILABLE),
    (NoCandidates, grpc.StatusCode.UNAVAILABLE),
    (errors.RouterError, grpc.StatusCode.INTERNAL),
)

_DOMAIN = "modelrouter.v1"


_SKIP_CODES = {
    Outcome.SKIPPED_CIRCUIT_OPEN: grpc.StatusCode.UNAVAILABLE,
    Outcome.SKIPPED_CONTEXT_WINDOW: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.SKIPPED_CAPABILITY: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.SKIPPED_COST: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.SKIPPED_DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def code_for_class(error_class: type[BaseException]) -> grpc.StatusCode:
    for cls, code in STATUS_TABLE:
        if issubclass(error_class, cls):
            return code
    return grpc.StatusCode.INTERNAL


def code_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, NoCandidates) and exc.all_rate_limited:
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    return code_for_class(type(exc))


def attempt_code(attempt: AttemptRecord) -> int:
    """The gRPC code one attempt maps to, as an int (for `Attempt.grpc_code`)."""
    if attempt.outcome in (Outcome.SUCCESS, Outcome.REFUSED):
        code = grpc.StatusCode.OK
    elif attempt.error_class is not None:
        code = code_for_class(attempt.error_class)
    else:
        code = _SKIP_CODES.get(attempt.outcome, grpc.StatusCode.UNAVAILABLE)
    return int(code.value[0])


def _any(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.RetryInfo
    | error_details_pb2.BadRequest,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _reason(error_class: type[BaseException]) -> str:
    """ErrorInfo.reason is UPPER_SNAKE_CASE by convention: ModelNotFound -> MODEL_NOT_FOUND."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", error_class.__name__).upper()


def to_status(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for an error, with ErrorInfo, RetryInfo and BadRequest
    details where they apply."""
    code = code_for(exc)
    if not isinstance(exc, errors.RouterError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
    status = status_pb2.Status(code=int(code.value[0]), message=exc.message)
    if isinstance(exc, errors.RequestError):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=exc.description
        )
        status.details.append(_any(error_details_pb2.BadRequest(field_violations=[violation])))
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    if isinstance(exc, NoCandidates):
        for i, attempt in enumerate(exc.attempts):
            metadata[f"attempt_{i}"] = (
                f"{attempt.provider}/{attempt.model} {attempt.outcome.value}"
                + (f": {attempt.error}" if attempt.error else "")
            )
        waits = [a.retry_after_s for a in exc.attempts if a.retry_after_s is not None]
        retry_after = min(waits) if waits else None
    elif isinstance(exc, errors.ProviderError):
        metadata.update(provider=exc.provider, model=exc.model)
        retry_after = exc.retry_after_s
    info = error_details_pb2.ErrorInfo(reason=_reason(type(exc)), domain=_DOMAIN, metadata=metadata)
    status.details.append(_any(info))
    if retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        status.details.append(_any(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status
