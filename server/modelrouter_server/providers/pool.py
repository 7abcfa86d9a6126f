"""Waiting for a connection of a provider's HTTP pool: bounded (`pool_timeout_s`) and
visible. A wait that runs out is logged once per call and reported to an observer (the
metrics), so a pool too small for the load shows up as such instead of as slow calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx2
import structlog

log = structlog.get_logger(__name__)

PoolObserver = Callable[[str], None]
"""Called with the provider's name when a call found no free connection in time."""


def _caused_by_pool_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx2.PoolTimeout):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True, slots=True)
class PoolWatch:
    """Recognises pool timeouts of one provider's client and reports them."""

    provider: str
    max_connections: int
    pool_timeout_s: float
    observer: PoolObserver | None = None

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
            self.observer(self.provider)
        return True
