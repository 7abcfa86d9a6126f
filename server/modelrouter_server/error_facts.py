"""What the router does with each error: one row per class of the `RouterError` hierarchy.

A row holds the gRPC status a caller sees, the level the RPC is logged at, the
`google.rpc.ErrorInfo.reason`, the phrase attempt summaries use ("rate limited") and
whether a retry can help. `facts_for` refines a row by the raised instance where one of
its fields decides (a rate limit that is an exhausted quota is not retryable; when every
candidate was rate limited the answer is RESOURCE_EXHAUSTED). Anything that is not a
`RouterError` is a bug: `BUG`. `tests/api/test_error_facts.py` fails when a class has no
row of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import grpc

from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome
from modelrouter_server.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    ConversationNotFound,
    DeadlineExceeded,
    InvalidProviderRequest,
    InvalidStructuredOutput,
    MalformedRequest,
    ModelNotFound,
    NotPermitted,
    Overloaded,
    PermissionDenied,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimited,
    RequestError,
    RequestTooLarge,
    RouterError,
    ServerError,
    StoreError,
    StreamInterrupted,
    TurnAlreadyRecorded,
    UpstreamModelNotFound,
)

LogLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class ErrorFacts:
    """What the router does with one class of error."""

    status: grpc.StatusCode
    """The gRPC status a caller sees when this error ends an RPC."""
    log_level: LogLevel
    """info: the caller's doing; warning: upstream trouble the router reports; error: an
    operator must act (our credentials, our store, a bug)."""
    reason: str
    """`google.rpc.ErrorInfo.reason`, UPPER_SNAKE_CASE."""
    phrase: str
    """A few words for attempt summaries and logs: "rate limited"."""
    retryable: bool = False
    """A provider-health failure: worth another try, counted by the circuit breaker."""


_S = grpc.StatusCode

FACTS: Mapping[type[RouterError], ErrorFacts] = {
    RouterError: ErrorFacts(_S.INTERNAL, "error", "ROUTER_ERROR", "failed"),
    MalformedRequest: ErrorFacts(
        _S.INVALID_ARGUMENT, "info", "MALFORMED_REQUEST", "malformed request"
    ),
    # The status grpc's own receive limit gives: the limit is one of resources.
    RequestTooLarge: ErrorFacts(
        _S.RESOURCE_EXHAUSTED, "info", "REQUEST_TOO_LARGE", "request too large"
    ),
    RequestError: ErrorFacts(_S.INVALID_ARGUMENT, "info", "REQUEST_ERROR", "invalid request"),
    ModelNotFound: ErrorFacts(_S.NOT_FOUND, "info", "MODEL_NOT_FOUND", "unknown model"),
    ConversationNotFound: ErrorFacts(
        _S.NOT_FOUND, "info", "CONVERSATION_NOT_FOUND", "unknown conversation"
    ),
    StoreError: ErrorFacts(_S.UNAVAILABLE, "error", "STORE_ERROR", "conversation store failed"),
    # A concurrency conflict the caller resolves by repeating the call (which replays).
    TurnAlreadyRecorded: ErrorFacts(
        _S.ABORTED, "info", "TURN_ALREADY_RECORDED", "turn already recorded"
    ),
    DeadlineExceeded: ErrorFacts(
        _S.DEADLINE_EXCEEDED, "info", "DEADLINE_EXCEEDED", "deadline exceeded"
    ),
    # The caller's tenant: its configuration says no, or its limits are used up.
    InvalidStructuredOutput: ErrorFacts(
        _S.FAILED_PRECONDITION, "warning", "INVALID_STRUCTURED_OUTPUT", "reply not valid"
    ),
    NotPermitted: ErrorFacts(_S.PERMISSION_DENIED, "info", "NOT_PERMITTED", "not permitted"),
    QuotaExceeded: ErrorFacts(
        _S.RESOURCE_EXHAUSTED, "info", "TENANT_QUOTA_EXCEEDED", "tenant limit reached"
    ),
    NoCandidates: ErrorFacts(_S.UNAVAILABLE, "warning", "NO_CANDIDATES", "no candidate answered"),
    ProviderError: ErrorFacts(_S.UNAVAILABLE, "warning", "PROVIDER_ERROR", "failed"),
    InvalidProviderRequest: ErrorFacts(
        _S.INVALID_ARGUMENT, "info", "INVALID_PROVIDER_REQUEST", "rejected the request"
    ),
    ContextWindowExceeded: ErrorFacts(
        _S.INVALID_ARGUMENT, "info", "CONTEXT_WINDOW_EXCEEDED", "context window exceeded"
    ),
    # The router's own credentials or config are at fault, not the caller's: INTERNAL,
    # and an operator must look.
    AuthenticationFailed: ErrorFacts(
        _S.INTERNAL, "error", "AUTHENTICATION_FAILED", "authentication failed (check its API key)"
    ),
    PermissionDenied: ErrorFacts(_S.INTERNAL, "error", "PERMISSION_DENIED", "permission denied"),
    UpstreamModelNotFound: ErrorFacts(
        _S.INTERNAL, "error", "UPSTREAM_MODEL_NOT_FOUND", "model not found upstream"
    ),
    RateLimited: ErrorFacts(
        _S.RESOURCE_EXHAUSTED, "warning", "RATE_LIMITED", "rate limited", retryable=True
    ),
    Overloaded: ErrorFacts(_S.UNAVAILABLE, "warning", "OVERLOADED", "overloaded", retryable=True),
    ServerError: ErrorFacts(
        _S.UNAVAILABLE, "warning", "SERVER_ERROR", "server error", retryable=True
    ),
    ProviderTimeout: ErrorFacts(
        _S.DEADLINE_EXCEEDED, "warning", "PROVIDER_TIMEOUT", "timed out", retryable=True
    ),
    ProviderConnectionError: ErrorFacts(
        _S.UNAVAILABLE,
        "warning",
        "PROVIDER_CONNECTION_ERROR",
        "connection failed",
        retryable=True,
    ),
    StreamInterrupted: ErrorFacts(
        _S.UNAVAILABLE, "warning", "STREAM_INTERRUPTED", "stream interrupted", retryable=True
    ),
}
"""One row per error class."""

BUG = ErrorFacts(_S.INTERNAL, "error", "INTERNAL", "internal error")
"""The facts of anything that is not a `RouterError`: a bug, whose details stay in the log."""

_SKIP_STATUS: Mapping[Outcome, grpc.StatusCode] = {
    Outcome.SKIPPED_CIRCUIT_OPEN: _S.UNAVAILABLE,
    Outcome.SKIPPED_CONTEXT_WINDOW: _S.FAILED_PRECONDITION,
    Outcome.SKIPPED_CAPABILITY: _S.FAILED_PRECONDITION,
    Outcome.SKIPPED_COST: _S.FAILED_PRECONDITION,
    Outcome.SKIPPED_DEADLINE: _S.DEADLINE_EXCEEDED,
}


def facts_of(error_class: type[BaseException]) -> ErrorFacts:
    """The row of the nearest class in `error_class`'s ancestry that has one (a class
    defined outside the server, e.g. in a test, falls back to its parent's row)."""
    for cls in error_class.__mro__:
        if issubclass(cls, RouterError) and cls in FACTS:
            return FACTS[cls]
    return BUG


def facts_for(error: BaseException) -> ErrorFacts:
    """The facts of one raised error: its class's row, refined by its fields."""
    facts = facts_of(type(error))
    if isinstance(error, RateLimited) and error.quota_exhausted:
        # Out of quota: retrying cannot help until someone pays.
        return dataclasses.replace(facts, phrase="quota exhausted", retryable=False)
    if isinstance(error, StreamInterrupted):
        return dataclasses.replace(facts, phrase=f"{facts.phrase} ({error.kind.value})")
    if isinstance(error, NoCandidates) and error.all_rate_limited:
        # "Slow down, retry after N s" (with RetryInfo) tells the caller more than
        # "unavailable" would.
        return dataclasses.replace(facts, status=_S.RESOURCE_EXHAUSTED)
    return facts


def attempt_status(attempt: AttemptRecord) -> grpc.StatusCode:
    """The gRPC status one attempt maps to (`Attempt.grpc_code`, the metrics' `code`)."""
    if attempt.outcome in (Outcome.SUCCESS, Outcome.REFUSED):
        return _S.OK
    if attempt.error_class is not None:
        return facts_of(attempt.error_class).status
    return _SKIP_STATUS.get(attempt.outcome, _S.UNAVAILABLE)
