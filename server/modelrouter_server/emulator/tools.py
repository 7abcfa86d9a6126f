"""Tool calls on both wire formats: the calls a scripted model makes, and the checks the
real APIs make on a history that holds tool calls and results.

The checks are what make the emulator useful for tool loops that switch provider: each
API refuses a history whose calls and results do not pair up, or ids it cannot take, and
so does the emulator, with the API's own wording.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelrouter_server.emulator.behavior import Behavior, ScriptedToolCall
from modelrouter_server.emulator.errors import WireError
from modelrouter_server.emulator.json_answer import json_text, seeded_rng

_ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_OPENAI_MAX_ID = 40
_FRAGMENT_CHARS = 6


@dataclass(frozen=True)
class EmittedCall:
    """A tool call as the emulated model sends it, its arguments cut into fragments."""

    id: str
    name: str
    fragments: tuple[str, ...]

    @property
    def arguments_json(self) -> str:
        return "".join(self.fragments)


def emitted_calls(
    scripted_calls: Sequence[ScriptedToolCall], id_prefix: str
) -> tuple[EmittedCall, ...]:
    """The calls with fresh ids, their JSON cut into pieces anywhere."""
    calls = []
    for scripted in scripted_calls:
        text = scripted.arguments_json
        fragments = tuple(
            text[i : i + _FRAGMENT_CHARS] for i in range(0, len(text), _FRAGMENT_CHARS)
        )
        calls.append(EmittedCall(id_prefix + secrets.token_hex(12), scripted.name, fragments))
    return tuple(calls)


def calls_tools(body: Mapping[str, object], none_choice: object) -> bool:
    """Whether a model scripted to call tools may: the request offers tools and does not
    forbid them."""
    tools = body.get("tools")
    return isinstance(tools, list) and bool(tools) and body.get("tool_choice") != none_choice


def _tool_schema(tools: object, name: str, schema_of: str) -> object:
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        spec = tool.get("function") if schema_of == "parameters" else tool
        if isinstance(spec, Mapping) and spec.get("name") == name:
            return spec.get(schema_of, {})
    return {}


def _first_tool_name(tools: object, nested: bool) -> str | None:
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], Mapping):
        return None
    spec = tools[0].get("function") if nested else tools[0]
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return name if isinstance(name, str) else None


def forced_calls(
    body: Mapping[str, object], behavior: Behavior, api: str
) -> tuple[ScriptedToolCall, ...]:
    """The call a model must make when `tool_choice` forces tool use and none is
    scripted: to the named tool (else the first), with `behavior.text` as its arguments
    when scripted (to test invalid structured output), else arguments valid against the
    tool's schema."""
    choice = body.get("tool_choice")
    tools = body.get("tools")
    nested = api == "openai"
    name: str | None = None
    if api == "anthropic" and isinstance(choice, Mapping):
        if choice.get("type") == "tool":
            name = str(choice.get("name"))
        elif choice.get("type") == "any":
            name = _first_tool_name(tools, nested)
    elif api == "openai":
        if choice == "required":
            name = _first_tool_name(tools, nested)
        elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
            name = str(choice["function"].get("name"))
    if name is None:
        return ()
    if behavior.text is not None:
        return (ScriptedToolCall(name, behavior.text),)
    schema = _tool_schema(tools, name, "parameters" if nested else "input_schema")
    # Arguments are an object whatever the schema says (or fails to say).
    schema = schema if isinstance(schema, Mapping) and schema else {"type": "object"}
    return (ScriptedToolCall(name, json_text(schema, seeded_rng(body))),)


def format_answer(body: Mapping[str, object], behavior: Behavior) -> str | None:
    """The text a Chat Completions model answers under a JSON `response_format` (None:
    no JSON format): the scripted text if any, else JSON valid against the schema."""
    fmt = body.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") not in ("json_object", "json_schema"):
        return None
    if behavior.text is not None:
        return behavior.text
    spec = fmt.get("json_schema")
    schema = spec.get("schema", {}) if isinstance(spec, Mapping) else {}
    if fmt.get("type") == "json_object":
        schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    return json_text(schema, seeded_rng(body))


def _anthropic_invalid(message: str) -> WireError:
    return WireError(400, "invalid_request_error", message)


def _blocks(content: object, kind: str) -> list[Mapping[str, object]]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, Mapping) and b.get("type") == kind]


def check_anthropic_tool_history(
    body: Mapping[str, object], messages: Sequence[tuple[str, object]]
) -> None:
    """Every tool_use answered by a tool_result in the next (user) message, every
    tool_result answering a tool_use of the message before, ids of the allowed form,
    and tools defined when the history holds tool blocks."""
    uses_tools = False
    for i, (role, content) in enumerate(messages):
        uses = _blocks(content, "tool_use")
        results = _blocks(content, "tool_result")
        uses_tools = uses_tools or bool(uses or results)
        if role == "assistant" and uses:
            for use in uses:
                if not _ANTHROPIC_ID.match(str(use.get("id", ""))):
                    raise _anthropic_invalid(
                        f"messages.{i}.content.tool_use.id: String should match pattern "
                        f"'^[a-zA-Z0-9_-]+$'"
                    )
            following = messages[i + 1][1] if i + 1 < len(messages) else None
            answered = {r.get("tool_use_id") for r in _blocks(following, "tool_result")}
            missing = [str(u.get("id")) for u in uses if u.get("id") not in answered]
            if i + 1 < len(messages) and missing:
                raise _anthropic_invalid(
                    f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message."
                )
        if results:
            if role != "user":
                raise _anthropic_invalid(
                    f"messages.{i}: `tool_result` blocks can only be in `user` messages"
                )
            previous = messages[i - 1][1] if i > 0 else None
            called = {u.get("id") for u in _blocks(previous, "tool_use")}
            for result in results:
                if result.get("tool_use_id") not in called:
                    raise _anthropic_invalid(
                        f"messages.{i}.content: unexpected `tool_use_id` found in "
                        "`tool_result` blocks: "
                        f"{result.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
    tools = body.get("tools")
    if uses_tools and not (isinstance(tools, list) and tools):
        raise _anthropic_invalid(
            "Requests which include `tool_use` or `tool_result` blocks must define tools."
        )


def check_openai_tool_history(messages: Sequence[Mapping[str, object]]) -> None:
    """Each assistant `tool_calls` followed by a `tool` message for every id, each tool
    message answering one of them, ids at most 40 characters."""
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not pending and call_id is not None:
                raise _openai_invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            if call_id in pending:
                pending.remove(str(call_id))
            continue
        if pending:
            raise _openai_invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                f"messages.[{i}].role",
            )
        calls = message.get("tool_calls")
        if role == "assistant" and isinstance(calls, list):
            for j, call in enumerate(calls):
                call_id = call.get("id") if isinstance(call, Mapping) else None
                if not isinstance(call_id, str) or len(call_id) > _OPENAI_MAX_ID:
                    raise _openai_invalid(
                        f"Invalid 'messages[{i}].tool_calls[{j}].id': string too long. "
                        f"Expected a string with maximum length {_OPENAI_MAX_ID}.",
                        f"messages[{i}].tool_calls[{j}].id",
                    )
                pending.append(call_id)


def _openai_invalid(message: str, param: str) -> WireError:
    return WireError(400, "invalid_request_error", message, param=param)
