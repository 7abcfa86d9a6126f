"""Waiting for a connection of a provider's HTTP pool: bounded (`pool_timeout_s`) and
visible. Every wait is timed and reported to an observer (the metrics); a wait that runs
out is also logged once per call, so a pool too small for the load shows up as such
instead of as slow calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2
import structlog

log = structlog.get_logger(__name__)

_TRACE = "trace"
"""httpx's request extension that httpcore calls with each connection event."""


class PoolObserver(Protocol):
    """Hears how long calls wait for a pooled connection (the metrics implement it)."""

    def observe_pool_wait(self, provider: str, seconds: float) -> None:
        """A call of `provider` got a connection after waiting `seconds` for it."""

    def observe_pool_timeout(self, provider: str) -> None:
        """A call of `provider` found no free connection within `pool_timeout_s`."""


def _caused_by_pool_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx2.PoolTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class _WaitTimer:
    """The `trace` extension of one request: httpcore's first event for it (the TCP
    connect of a new connection, or the request headers on a reused one) comes right
    after the pool handed it a connection, so the time until then is the wait."""

    __slots__ = ("_extensions", "_observer", "_provider", "_started")

    def __init__(self, observer: PoolObserver, provider: str, extensions: dict[str, Any]) -> None:
        self._observer = observer
        self._provider = provider
        self._extensions: dict[str, Any] | None = extensions
        self._started = time.perf_counter()

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        extensions = self._extensions
        if extensions is None:
            return  # a later event of a trace block that began with the first one
        self._extensions = None
        # Off the request from now on: httpcore need not call back for every later event.
        if extensions.get(_TRACE) is self:
            del extensions[_TRACE]
        self._observer.observe_pool_wait(self._provider, time.perf_counter() - self._started)


@dataclass(frozen=True, slots=True)
class PoolWatch:
    """Times the pool waits of one provider's client, and recognises its pool timeouts."""

    provider: str
    max_connections: int
    pool_timeout_s: float
    observer: PoolObserver | None = None

    async def on_request(self, request: httpx2.Request) -> None:
        """httpx's request hook (httpcore pools): start timing the wait for a connection."""
        if self.observer is not None and _TRACE not in request.extensions:
            extensions = request.extensions
            extensions[_TRACE] = _WaitTimer(self.observer, self.provider, extensions)

    def waited(self, seconds: float) -> None:
        """A call got its connection after `seconds` (the aiohttp transport's report)."""
        if self.observer is not None:
            self.observer.observe_pool_wait(self.provider, seconds)

    def exhausted(self, exc: BaseException, *, model: str) -> bool:
        """True (after logging and reporting it) when `exc` is a wait for a pooled
        connection that ran out."""
        if not _caused_by_pool_timeout(exc):
            return False
        log.warning(
            "upstream_pool_exhausted",
            provider=self.provider,
            model=model,
            max_connections=self.max_connections,
            pool_timeout_s=self.pool_timeout_s,
        )
        if self.observer is not None:
            self.observer.observe_pool_timeout(self.provider)
        return True
