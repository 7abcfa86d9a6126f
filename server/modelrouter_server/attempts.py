"""The record of one upstream try or skipped candidate, shared by the router, the
fallback chain and the API layer (which turns it into `modelrouter.v1.Attempt`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from modelrouter_server.errors import ProviderError


class Outcome(enum.Enum):
    SUCCESS = "success"
    ERROR = "error"
    SKIPPED_CIRCUIT_OPEN = "skipped_circuit_open"
    SKIPPED_CONTEXT_WINDOW = "skipped_context_window"
    SKIPPED_CAPABILITY = "skipped_capability"
    SKIPPED_COST = "skipped_cost"
    INTERRUPTED = "interrupted"
    SKIPPED_DEADLINE = "skipped_deadline"


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
