"""Building domain errors from what an SDK reported, shared by every provider.

Each provider module reads its SDK's exception into an `HttpFailure` (status, the provider's
structured error type and code, its message) and decides the few provider-specific facts
(is this a context-window error? quota? overload?); the table from status to domain class
lives here, once. Every message passes through `redact`, so a key echoed by an upstream
error body never reaches a log or a caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelrouter_server.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    InterruptionKind,
    InvalidProviderRequest,
    Overloaded,
    PermissionDenied,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamInterrupted,
    UpstreamModelNotFound,
)
from modelrouter_server.providers.pool import PoolWatch
from modelrouter_server.providers.retry_after import retry_after_from_headers

_BEARER = re.compile(r"(?i)\bbearer\s+\S+")
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_MIN_SECRET_LEN = 8


def redact(text: str, secret: str) -> str:
    """`text` without `secret`, bearer tokens or anything shaped like an API key."""
    if len(secret) >= _MIN_SECRET_LEN:
        text = text.replace(secret, "[redacted]")
    text = _BEARER.sub("Bearer [redacted]", text)
    return _KEY_LIKE.sub("sk-[redacted]", text)


def transport_detail(exc: BaseException) -> str:
    """What failed in the transport, in a few words.

    The SDKs' wrappers say little ("Connection error."); the exception they were raised
    from names what failed (ConnectError, ReadTimeout, RemoteProtocolError...).
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    text = str(cause).strip()
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """An error status from the provider, as its SDK reported it."""

    status_code: int
    error_type: str | None
    error_code: str | None
    message: str
    request_id: str | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        labels = " ".join(label for label in (self.error_type, self.error_code) if label)
        return f"{self.status_code} {labels or 'error'}: {self.message or '(no message)'}"


@dataclass(frozen=True, slots=True)
class UpstreamErrors:
    """Builds the domain errors of one call to `model` on `provider`."""

    provider: str
    model: str
    secret: str = field(repr=False)
    pool: PoolWatch | None = field(default=None, repr=False)

    def from_status(
        self,
        failure: HttpFailure,
        *,
        context_window: bool = False,
        quota_exhausted: bool = False,
        overloaded: bool = False,
    ) -> ProviderError:
        """The domain error for an error status that arrived before any answer."""
        message = self._message(failure.describe())
        retry_after_s = retry_after_from_headers(failure.headers)
        if quota_exhausted or failure.status_code == 429:
            return RateLimited(
                message,
                quota_exhausted=quota_exhausted,
                provider=self.provider,
                model=self.model,
                status_code=failure.status_code,
                upstream_request_id=failure.request_id,
                retry_after_s=retry_after_s,
            )
        error_class = _status_class(
            failure.status_code, context_window=context_window, overloaded=overloaded
        )
        return error_class(
            message,
            provider=self.provider,
            model=self.model,
            status_code=failure.status_code,
            upstream_request_id=failure.request_id,
            retry_after_s=retry_after_s,
        )

    def interrupted(
        self,
        kind: InterruptionKind,
        detail: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
    ) -> StreamInterrupted:
        """The stream broke after the provider answered with 200."""
        return StreamInterrupted(
            self._message(f"stream {kind.value}: {detail}"),
            kind=kind,
            provider=self.provider,
            model=self.model,
            status_code=status_code,
            upstream_request_id=request_id,
        )

    def timeout(self, detail: str, *, cause: BaseException | None = None) -> ProviderTimeout:
        """No reply (or no complete reply) in time; `cause` tells a wait for a pooled
        connection (logged and counted by the pool watch) from a slow provider."""
        pool = self.pool
        if cause is not None and pool is not None and pool.exhausted(cause, model=self.model):
            detail = f"no free connection in the pool within {pool.pool_timeout_s:g}s"
        return ProviderTimeout(
            self._message(f"timed out: {detail}"), provider=self.provider, model=self.model
        )

    def connection(self, detail: str) -> ProviderConnectionError:
        """The connection failed before a reply arrived."""
        return ProviderConnectionError(
            self._message(f"connection failed: {detail}"), provider=self.provider, model=self.model
        )

    def unexpected(self, detail: str, *, status_code: int | None = None) -> ServerError:
        """A reply the SDK could not make sense of."""
        return ServerError(
            self._message(f"unexpected reply: {detail}"),
            provider=self.provider,
            model=self.model,
            status_code=status_code,
        )

    def _message(self, text: str) -> str:
        return redact(f"{self.provider} ({self.model}): {text}", self.secret)


_CLASS_BY_STATUS: Mapping[int, type[ProviderError]] = {
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: UpstreamModelNotFound,
    # The server gave up waiting for the request: a timeout, worth another try.
    408: ProviderTimeout,
    529: Overloaded,
}


def _status_class(status: int, *, context_window: bool, overloaded: bool) -> type[ProviderError]:
    if context_window:
        return ContextWindowExceeded
    if overloaded:
        return Overloaded
    if status in _CLASS_BY_STATUS:
        return _CLASS_BY_STATUS[status]
    if 400 <= status < 500:
        return InvalidProviderRequest
    return ServerError
