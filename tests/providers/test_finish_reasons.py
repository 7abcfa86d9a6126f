"""The stop-reason tables: every reason each provider documents, mapped on purpose."""

from __future__ import annotations

import pytest
from modelrouter_server.domain import FinishReason, Usage
from modelrouter_server.providers.finish_reasons import (
    ANTHROPIC_STOP_REASONS,
    OPENAI_FINISH_REASONS,
    finish_detail,
    finish_reason,
)
from structlog.testing import capture_logs

# As the providers document them: the expected meaning of each, written out here rather
# than read back from the table under test.
ANTHROPIC = {
    "end_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "stop_sequence": FinishReason.STOP_SEQUENCE,
    "tool_use": FinishReason.TOOL_CALL,
    "pause_turn": FinishReason.PAUSED,
    "refusal": FinishReason.REFUSAL,
    "model_context_window_exceeded": FinishReason.CONTEXT_WINDOW,
}
OPENAI = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALL,
    "content_filter": FinishReason.CONTENT_FILTER,
    "function_call": FinishReason.TOOL_CALL,
}


def test_the_anthropic_table_holds_every_documented_stop_reason_and_nothing_else() -> None:
    assert dict(ANTHROPIC_STOP_REASONS) == ANTHROPIC


def test_the_openai_table_holds_every_documented_finish_reason_and_nothing_else() -> None:
    assert dict(OPENAI_FINISH_REASONS) == OPENAI


def test_the_anthropic_table_covers_the_sdks_stop_reason_type() -> None:
    from typing import get_args

    from anthropic.types import StopReason

    assert set(get_args(StopReason)) == set(ANTHROPIC_STOP_REASONS)


@pytest.mark.parametrize("raw", ["brand_new", None, ""])
def test_an_unknown_reason_is_logged_once_and_passed_on_as_unknown(raw: str | None) -> None:
    api = f"test-api-{raw}"
    with capture_logs() as logs:
        first = finish_reason(api, OPENAI_FINISH_REASONS, raw)
        again = finish_reason(api, OPENAI_FINISH_REASONS, raw)
    assert first is again is FinishReason.UNKNOWN
    warnings = [e for e in logs if e["event"] == "unknown_finish_reason"]
    assert len(warnings) == 1
    assert warnings[0]["api"] == api and warnings[0]["finish_reason"] == raw


def test_finish_detail_explains_a_length_stop_with_no_text() -> None:
    spent = Usage(input_tokens=10, output_tokens=64, reasoning_tokens=64)
    assert "reasoning used 64 of 64" in finish_detail(FinishReason.LENGTH, False, spent)
    assert "thinking" in finish_detail(FinishReason.LENGTH, False, None, thought=True)
    assert finish_detail(FinishReason.LENGTH, False, None) != ""
    assert finish_detail(FinishReason.LENGTH, True, spent) == ""
    assert finish_detail(FinishReason.STOP, False, spent) == ""
