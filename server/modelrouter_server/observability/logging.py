"""structlog set-up: one line per event, console or JSON, with secrets scrubbed.

The scrubber is the last line of defence: no code logs a key on purpose, but an SDK
error string or a repr could carry one, so every event passes through it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Provider key shapes, and any bearer token or api-key header value.
_SECRET = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,}|(?i:x-api-key)[\"':= ]+[A-Za-z0-9_\-\.]{8,})"
)
_SECRET_KEYS = frozenset({"api_key", "authorization", "x-api-key", "key", "token", "password"})


def redact_secrets(text: str) -> str:
    return _SECRET.sub("[REDACTED]", text)


def _scrub(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[REDACTED]"
        elif isinstance(value, str):
            event[key] = redact_secrets(value)
    return event


def configure_logging(*, json: bool = False, level: str = "info") -> None:
    """Configure structlog (and route stdlib logging through the same output)."""
    numeric = logging.getLevelName(level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _scrub,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
