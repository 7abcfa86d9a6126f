"""Every stop reason each provider documents, mapped on purpose: one table per API.

A reason missing from its table (a new API version, a compatible server's own word) is
logged once per provider API and value and passed on as `FinishReason.UNKNOWN`: guessing
"stop" would report a cut or filtered answer as a normal success.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import structlog

from modelrouter_server.domain import FinishReason, Usage

log = structlog.get_logger(__name__)

ANTHROPIC_STOP_REASONS: Mapping[str, FinishReason] = MappingProxyType(
    {
        "end_turn": FinishReason.STOP,
        "max_tokens": FinishReason.LENGTH,
        "stop_sequence": FinishReason.STOP_SEQUENCE,
        "tool_use": FinishReason.TOOL_CALL,
        "pause_turn": FinishReason.PAUSED,
        "refusal": FinishReason.REFUSAL,
        "model_context_window_exceeded": FinishReason.CONTEXT_WINDOW,
    }
)
"""Messages API `stop_reason`."""

OPENAI_FINISH_REASONS: Mapping[str, FinishReason] = MappingProxyType(
    {
        # A refusal also ends with "stop"; the provider turns that into REFUSAL when the
        # message carried `refusal` text.
        "stop": FinishReason.STOP,
        "length": FinishReason.LENGTH,
        "tool_calls": FinishReason.TOOL_CALL,
        # The deprecated single-function form of a tool call.
        "function_call": FinishReason.TOOL_CALL,
        "content_filter": FinishReason.CONTENT_FILTER,
    }
)
"""Chat Completions `finish_reason`."""

_reported: set[tuple[str, str]] = set()


def finish_reason(api: str, table: Mapping[str, FinishReason], raw: str | None) -> FinishReason:
    """`raw` through `table`; an unknown value is logged the first time it is seen."""
    if raw is not None and (mapped := table.get(raw)) is not None:
        return mapped
    key = (api, raw or "")
    if key not in _reported:
        _reported.add(key)
        log.warning("unknown_finish_reason", api=api, finish_reason=raw)
    return FinishReason.UNKNOWN


def finish_detail(
    reason: FinishReason, visible_text: bool, usage: Usage | None, *, thought: bool = False
) -> str:
    """Words for a finish the reason alone would leave puzzling, else "".

    `visible_text`: the answer has some text other than whitespace.

    A reasoning model (o3-mini, or Claude with extended thinking) can spend the whole
    output budget before writing a word: the reply is then LENGTH with no text, which
    reads like an empty answer unless it is said.
    """
    if reason is not FinishReason.LENGTH or visible_text:
        return ""
    if usage is not None and usage.reasoning_tokens:
        return (
            f"the output limit was reached with no visible text: reasoning used "
            f"{usage.reasoning_tokens} of {usage.output_tokens} output tokens; "
            f"raise max_output_tokens or lower the reasoning effort or thinking budget"
        )
    if thought:
        return (
            "the output limit was reached with no visible text: extended thinking used it "
            "up; raise max_output_tokens or lower the thinking budget"
        )
    return "the output limit was reached before any visible text"
