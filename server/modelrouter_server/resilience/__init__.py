"""Resilience: the one retry loop, per-endpoint circuit breakers and the fallback chain."""

from modelrouter_server.resilience.breakers import (
    BreakerRegistry,
    CircuitOpen,
    CircuitState,
    CircuitTransition,
    Permit,
    TransitionObserver,
)
from modelrouter_server.resilience.chain import FallbackChain
from modelrouter_server.resilience.chain_stream import continuation_request
from modelrouter_server.resilience.events import (
    ChainEvent,
    ChainFinished,
    ChainResult,
    ChainResumed,
    ChainStarted,
    RequestBuilder,
)
from modelrouter_server.resilience.ledger import describe_error
from modelrouter_server.resilience.retry import (
    RetryDecision,
    RetryPolicy,
    RetryStopped,
    StopReason,
    call_with_retries,
)
from modelrouter_server.resilience.timing import Clock, Sleep

__all__ = [
    "BreakerRegistry",
    "ChainEvent",
    "ChainFinished",
    "ChainResult",
    "ChainResumed",
    "ChainStarted",
    "CircuitOpen",
    "CircuitState",
    "CircuitTransition",
    "Clock",
    "FallbackChain",
    "Permit",
    "RequestBuilder",
    "RetryDecision",
    "RetryPolicy",
    "RetryStopped",
    "Sleep",
    "StopReason",
    "TransitionObserver",
    "call_with_retries",
    "continuation_request",
    "describe_error",
]
