"""What became of each candidate of a request, shared by the router, the fallback chain,
generation and the API layer (which turns each record into `modelrouter.v1.Attempt`):
one `AttemptRecord` per upstream try or skipped candidate, and `NoCandidates` when none
of them produced an answer."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from modelrouter_server.errors import ProviderError, RateLimited, RouterError


class Outcome(enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED_CIRCUIT_OPEN = "skipped_circuit_open"
    SKIPPED_CONTEXT_WINDOW = "skipped_context_window"
    SKIPPED_CAPABILITY = "skipped_capability"
    SKIPPED_COST = "skipped_cost"
    INTERRUPTED = "interrupted"
    SKIPPED_DEADLINE = "skipped_deadline"
    REFUSED = "refused"
    """The model refused and the route falls back on refusals."""


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    model: str
    provider: str
    outcome: Outcome
    error: str = ""
    error_class: type[ProviderError] | None = None
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    retry_after_s: float | None = None


class NoCandidates(RouterError):
    """Every candidate was skipped or failed; `attempts` holds each, in order.

    Part of the `errors.RouterError` hierarchy; it lives here, beside the records it
    carries, so that `errors` depends on nothing.
    """

    def __init__(self, message: str, attempts: Sequence[AttemptRecord]) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    @property
    def all_rate_limited(self) -> bool:
        tried = [a for a in self.attempts if a.error_class is not None]
        return bool(tried) and all(a.error_class is RateLimited for a in tried)
