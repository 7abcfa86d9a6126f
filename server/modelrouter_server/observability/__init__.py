"""Structured logs and metrics."""

from modelrouter_server.observability.logging import configure_logging
from modelrouter_server.observability.metrics import AggregatedMetrics, Metrics
from modelrouter_server.observability.redaction import (
    Redactor,
    configured_secrets,
    redact_secrets,
)
from modelrouter_server.observability.summary import Answer, RequestSummary

__all__ = [
    "AggregatedMetrics",
    "Answer",
    "Metrics",
    "Redactor",
    "RequestSummary",
    "configure_logging",
    "configured_secrets",
    "redact_secrets",
]
