"""Structured logs and metrics."""

from modelrouter_server.observability.logging import configure_logging, redact_secrets
from modelrouter_server.observability.metrics import Metrics

__all__ = ["Metrics", "configure_logging", "redact_secrets"]
