"""Log lines as machines read them: `auto` writes JSON when stderr is no terminal, and a
JSON line stays one JSON object whatever values an event carries."""

from __future__ import annotations

import json
from pathlib import Path

import structlog
from modelrouter_testsupport.router_process import start_router, stop_router

from .logcapture import captured_log


def test_values_json_cannot_spell_still_make_one_json_line() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    with captured_log() as log:
        structlog.get_logger("t").info(
            "odd_values", counts={3: "three"}, big=2**70, thing=Opaque(), text="Grüße"
        )
    (event,) = log.events()
    assert event["counts"] == {"3": "three"}
    assert event["big"] == 2**70
    assert event["thing"] == "<opaque>"
    assert event["text"] == "Grüße"


def test_the_default_format_is_json_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    router = start_router(tmp_path, metrics=False)  # its stderr goes to router.log
    stop_router(router)
    lines = [line for line in router.log_path.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert "serving_through_emulator" in {event["event"] for event in events}
    assert all(event["level"] for event in events)
