"""Structured logs and metrics."""

from modelrouter_server.observability.logging import configure_logging, redact_secrets

__all__ = ["configure_logging", "redact_secrets"]
