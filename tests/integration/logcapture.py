"""Capturing the router's log output as it would be written, through `configure_logging`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from modelrouter_server.observability import configure_logging
from modelrouter_server.observability.logging import HANDLER_NAME


class CapturedLog:
    """The lines written so far, raw and parsed."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    def events(self) -> list[dict[str, Any]]:
        """Every line as JSON; fails on a line that is not one JSON object."""
        out = []
        for line in self.lines():
            event = json.loads(line)
            assert isinstance(event, dict), line
            out.append(event)
        return out


@contextmanager
def captured_log(
    *, json_format: bool = True, level: str = "info", secrets: tuple[str, ...] = ()
) -> Iterator[CapturedLog]:
    """Configure logging as `serve` does, into memory; restore the defaults after."""
    log = CapturedLog()
    configure_logging(json=json_format, level=level, secrets=secrets, stream=log.stream)
    try:
        yield log
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.name == HANDLER_NAME]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        for name in logging.root.manager.loggerDict:
            logging.getLogger(name).setLevel(logging.NOTSET)
        structlog.reset_defaults()
