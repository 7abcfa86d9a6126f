"""What both providers share about tool calls: ids each API accepts, and assembling
streamed calls from their pieces.

A tool loop may switch provider at any turn, so a history holds ids minted by either API.
Each API checks the ids it is sent (Anthropic: letters, digits, `_` and `-`; OpenAI: at
most 40 characters), so an id the target would refuse is replaced by a stable digest of
it. The same function maps a call's id and its result's `tool_call_id`, so they still
match; ids the target accepts (the usual case: `toolu_...` and `call_...` suit both) pass
unchanged, so results keep matching their calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelrouter_server.domain import ToolCall

_ANTHROPIC_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_OPENAI_MAX_ID = 40


def _digest_id(prefix: str, tool_call_id: str) -> str:
    return prefix + hashlib.sha256(tool_call_id.encode()).hexdigest()[:24]


def anthropic_tool_id(tool_call_id: str) -> str:
    """`tool_call_id` as Anthropic accepts it in tool_use / tool_result blocks."""
    if _ANTHROPIC_ID.fullmatch(tool_call_id):
        return tool_call_id
    return _digest_id("toolu_r", tool_call_id)


def openai_tool_id(tool_call_id: str) -> str:
    """`tool_call_id` as Chat Completions accepts it."""
    if 0 < len(tool_call_id) <= _OPENAI_MAX_ID:
        return tool_call_id
    return _digest_id("call_r", tool_call_id)


class MalformedToolCall(ValueError):
    """The provider sent tool-call arguments that are not a JSON object."""


def parse_arguments(name: str, text: str) -> dict[str, object]:
    """A call's arguments from their JSON text ("" is no arguments)."""
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise MalformedToolCall(f"tool call {name!r}: arguments are not JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise MalformedToolCall(f"tool call {name!r}: arguments are not a JSON object")
    return parsed


def arguments_json(arguments: Mapping[str, object]) -> str:
    return json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class _Pending:
    id: str = ""
    name: str = ""
    fragments: list[str] = field(default_factory=list)


class ToolCallAssembly:
    """The tool calls of one stream, built from their pieces, by index."""

    def __init__(self) -> None:
        self._calls: dict[int, _Pending] = {}

    def add(self, index: int, *, id: str = "", name: str = "", fragment: str = "") -> None:
        call = self._calls.setdefault(index, _Pending())
        call.id = call.id or id
        call.name = call.name or name
        if fragment:
            call.fragments.append(fragment)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def calls(self) -> tuple[ToolCall, ...]:
        """The complete calls in index order; raises `MalformedToolCall`."""
        return tuple(
            ToolCall(call.id, call.name, parse_arguments(call.name, "".join(call.fragments)))
            for _, call in sorted(self._calls.items())
        )
