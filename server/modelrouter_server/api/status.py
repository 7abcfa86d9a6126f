"""Domain errors as gRPC statuses with rich details.

Which status, log level and reason each error class has is one table,
`error_facts.FACTS`;
this module only packs a raised error into a `google.rpc.Status`. Anything that is not
a `RouterError` is a bug, reported as INTERNAL (never UNKNOWN) with a message that leaks
nothing about its cause.
"""

from __future__ import annotations

from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from modelrouter_server import errors
from modelrouter_server.attempts import NoCandidates
from modelrouter_server.error_facts import facts_for

_DOMAIN = "modelrouter.v1"


def _any(
    message: error_details_pb2.ErrorInfo
    | error_details_pb2.RetryInfo
    | error_details_pb2.BadRequest
    | error_details_pb2.QuotaFailure,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: BaseException) -> status_pb2.Status:
    """The google.rpc.Status for an error, with ErrorInfo, RetryInfo and BadRequest
    details where they apply."""
    if not isinstance(exc, errors.RouterError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
    facts = facts_for(exc)
    status = status_pb2.Status(code=int(facts.status.value[0]), message=exc.message)
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
    elif isinstance(exc, errors.QuotaExceeded):
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"tenant:{exc.tenant}", description=f"{exc.limit}: {exc.description}"
        )
        status.details.append(_any(error_details_pb2.QuotaFailure(violations=[violation])))
        retry_after = exc.retry_after_s
    elif isinstance(exc, errors.RequestTooLarge):
        metadata.update(limit="max_request_bytes", max_bytes=str(exc.limit), bytes=str(exc.size))
    elif isinstance(exc, errors.ProviderError):
        metadata.update(provider=exc.provider, model=exc.model)
        retry_after = exc.retry_after_s
    info = error_details_pb2.ErrorInfo(reason=facts.reason, domain=_DOMAIN, metadata=metadata)
    status.details.append(_any(info))
    if retry_after is not None:
        status.details.append(_retry_info(retry_after))
    return status


def refused_status(
    code: code_pb2.Code.ValueType, reason: str, message: str, retry_after_s: float
) -> status_pb2.Status:
    """The google.rpc.Status of a call refused before any handler ran (admission, drain):
    ErrorInfo (`reason`) and RetryInfo."""
    status = status_pb2.Status(code=code, message=message)
    status.details.extend(
        [
            _any(error_details_pb2.ErrorInfo(reason=reason, domain=_DOMAIN)),
            _retry_info(retry_after_s),
        ]
    )
    return status


def _retry_info(seconds: float) -> any_pb2.Any:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(int(seconds * 1e9))
    return _any(error_details_pb2.RetryInfo(retry_delay=delay))
