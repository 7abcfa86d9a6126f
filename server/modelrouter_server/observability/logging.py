"""structlog set-up: one line per event, console or JSON, with secrets scrubbed.

Every line goes through one chain, whoever logs it: the router's structlog events and
the stdlib loggers of the libraries under it (httpx, the SDKs, grpc, asyncio) share one
handler whose `ProcessorFormatter` adds the level and timestamp, renders tracebacks as
text inside the event (so a JSON log stays one JSON object per line), drops the value of
any key-named field and finally scrubs the rendered line with a `Redactor` (see
`redaction`), which knows the configured secret values.
"""

from __future__ import annotations

import json as stdlib_json
import logging
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import IO, Any

import orjson
import structlog
from structlog.stdlib import ProcessorFormatter

from modelrouter_server.observability.redaction import (
    REDACTED,
    Redactor,
    is_secret_name,
    redact_secrets,
)

__all__ = ["configure_logging", "redact_secrets"]

HANDLER_NAME = "modelrouter"
"""The name of the one root handler `configure_logging` installs (and replaces)."""

# Libraries whose INFO lines are per-request chatter (httpx logs every request); they
# speak at WARNING and above unless the router's level is debug.
_CHATTY = (
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "anthropic",
    "openai",
    "grpc",
    "asyncio",
    "aiosqlite",
)


def _drop_secret_fields(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if is_secret_name(key):
            event[key] = REDACTED
    return event


def _json_line(event: Any, default: Callable[[Any], Any]) -> str:
    """`event` as one JSON object: orjson (a quarter of the stdlib encoder's time per
    line); a value it refuses (an int over 64 bits) falls back to the stdlib encoder."""
    try:
        return orjson.dumps(event, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return stdlib_json.dumps(event, default=default)


class _ScrubbedRenderer:
    """The renderer, then the redactor over the whole line: nested values, tracebacks
    and stdlib messages are all text by then."""

    def __init__(self, render: Any, redactor: Redactor) -> None:
        self._render = render
        self._redact = redactor

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        return self._redact(str(self._render(logger, name, event)))


def configure_logging(
    *,
    json: bool = False,
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Route structlog and stdlib logging through one scrubbing chain to `stream`
    (stderr by default). `secrets` are values removed from every line in any form."""
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    out = stream if stream is not None else sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer(_json_line)
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    handler = logging.StreamHandler(out)
    handler.name = HANDLER_NAME
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _drop_secret_fields,
                _ScrubbedRenderer(renderer, Redactor(secrets)),
            ],
        )
    )
    # Nothing renders a record's caller, thread or process, which the stdlib would
    # otherwise look up for every line (the logging HOWTO's "Optimization" switches).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    chatty = numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(chatty)
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
