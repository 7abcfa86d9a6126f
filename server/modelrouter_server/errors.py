"""The domain error hierarchy.

    RouterError
    ├── MalformedRequest        the request bytes are not a valid message of its type
    ├── RequestTooLarge         the request bytes are over `limits.max_request_bytes`
    ├── RequestError            the caller's request is wrong (names the field)
    │   └── ModelNotFound           an unknown model id or alias
    ├── ConversationNotFound
    ├── StoreError              the conversation store failed (nothing was written)
    ├── TurnAlreadyRecorded     a concurrent call recorded a turn with the same request id
    ├── DeadlineExceeded        the caller's deadline passed inside the router
    ├── NotPermitted            the caller's tenant may not use this model or task
    ├── QuotaExceeded           a tenant limit (rate, streams, budget) refused the request
    ├── NoCandidates            every candidate was skipped or failed (in `attempts`,
    │                           beside the attempt records it carries)
    └── ProviderError           one upstream call failed; mapped once, at the provider boundary
        ├── InvalidProviderRequest      400/413/422: the request itself is wrong
        │   └── ContextWindowExceeded
        ├── AuthenticationFailed        401
        ├── PermissionDenied            403
        ├── UpstreamModelNotFound       404
        ├── RateLimited                 429 (quota exhausted is not retryable)
        ├── Overloaded                  529
        ├── ServerError                 5xx
        ├── ProviderTimeout             the call or time-to-first-token timed out
        ├── ProviderConnectionError     could not connect / connection reset before a reply
        └── StreamInterrupted           the stream broke after it started (error event,
                                        dropped connection, stall, or an end without the
                                        terminal event)

What the router does with each class (its gRPC status, log level, `ErrorInfo.reason`,
the phrase attempt summaries use, whether a retry can help) is one row of
`error_facts.FACTS`. Provider errors carry only what is safe to return: never a header,
a key or the raw request.
"""

from __future__ import annotations

import enum

from modelrouter_server.quoting import quote


class RouterError(Exception):
    """Base of every error the router raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequest(RouterError):
    """The request bytes do not decode as the RPC's message type (bad wire format,
    invalid UTF-8 in a string, nesting past the decoder's limit)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"request is not a valid {type_name}")
        self.type_name = type_name


class RequestTooLarge(RouterError):
    """The serialized request is larger than `limits.max_request_bytes`; refused before it
    is decoded."""

    def __init__(self, type_name: str, size: int, limit: int) -> None:
        super().__init__(
            f"request is {size} bytes, over max_request_bytes ({limit}) for a {type_name}"
        )
        self.type_name = type_name
        self.size = size
        self.limit = limit


class RequestError(RouterError):
    """The caller's request is invalid; `field` is the proto field path at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message


class ModelNotFound(RequestError):
    pass


class ConversationNotFound(RouterError):
    """No conversation has the id; `field` is the request field that named it."""

    def __init__(self, conversation_id: str, *, field: str = "conversation_id") -> None:
        super().__init__(f"{field}: no conversation {quote(conversation_id)}")
        self.conversation_id = conversation_id
        self.field = field


class StoreError(RouterError):
    pass


class TurnAlreadyRecorded(RouterError):
    """A turn with this request id is already in the conversation, so the append was
    refused and nothing was written (another call with the same id recorded it first)."""

    def __init__(self, conversation_id: str, request_id: str) -> None:
        super().__init__(
            f"request_id: a turn with id {quote(request_id)} was recorded by a concurrent "
            "call; repeat the request to get the recorded answer"
        )
        self.conversation_id = conversation_id
        self.request_id = request_id


class DeadlineExceeded(RouterError):
    pass


class InvalidStructuredOutput(RouterError):
    """The model's reply did not match the request's `response_format`, on every
    candidate asked."""


class NotPermitted(RouterError):
    """The tenant's configuration does not allow this model or task; `field` is the
    request field that asked for it."""

    def __init__(self, tenant: str, field: str, what: str) -> None:
        super().__init__(f"{field}: tenant {quote(tenant)} may not use {what}")
        self.tenant = tenant
        self.field = field


class QuotaExceeded(RouterError):
    """A tenant limit refused the request, having taken nothing.

    `limit` is the config name of the limit (`requests_per_minute`, ...); `retry_after_s`
    is when the same request could be admitted (None: never, it alone exceeds the limit).
    """

    def __init__(
        self, tenant: str, limit: str, description: str, retry_after_s: float | None
    ) -> None:
        super().__init__(f"tenant {quote(tenant)}: {limit}: {description}")
        self.tenant = tenant
        self.limit = limit
        self.description = description
        self.retry_after_s = retry_after_s


class ProviderError(RouterError):
    """One failed upstream call. Whether the provider's health is at fault (worth another
    try, counted by the circuit breaker) or the request is, is a fact of its class in
    `error_facts` (`facts_for(error).retryable`), which imports this module."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        upstream_request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.upstream_request_id = upstream_request_id
        self.retry_after_s = retry_after_s


class InvalidProviderRequest(ProviderError):
    pass


class ContextWindowExceeded(InvalidProviderRequest):
    pass


class AuthenticationFailed(ProviderError):
    pass


class PermissionDenied(ProviderError):
    pass


class UpstreamModelNotFound(ProviderError):
    pass


class RateLimited(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        quota_exhausted: bool = False,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        upstream_request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            model=model,
            status_code=status_code,
            upstream_request_id=upstream_request_id,
            retry_after_s=retry_after_s,
        )
        self.quota_exhausted = quota_exhausted


class Overloaded(ProviderError):
    pass


class ServerError(ProviderError):
    pass


class ProviderTimeout(ProviderError):
    pass


class ProviderConnectionError(ProviderError):
    pass


class InterruptionKind(enum.Enum):
    ERROR_EVENT = "error_event"
    DROPPED = "dropped"
    TRUNCATED = "truncated"
    STALLED = "stalled"


class StreamInterrupted(ProviderError):
    def __init__(
        self,
        message: str,
        *,
        kind: InterruptionKind,
        provider: str = "",
        model: str = "",
        status_code: int | None = None,
        upstream_request_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            model=model,
            status_code=status_code,
            upstream_request_id=upstream_request_id,
        )
        self.kind = kind
