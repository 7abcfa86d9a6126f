"""The tool loop an agent runs: ask, run the tools the model calls, send the results back,
until the model answers without calling one (or the turn limit is reached).

Tools are plain functions (sync or async) taking keyword arguments. Their `Tool`
definition is derived from the signature (str, int, float, bool, list and dict
parameters; those without a default are required) and the docstring, unless given.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from google.protobuf import json_format, struct_pb2
from modelrouter.v1 import modelrouter_pb2 as pb

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]
"""A tool: called with the model's arguments as keyword arguments; its result (a string,
or anything JSON can encode) goes back to the model."""

_JSON_TYPES: Mapping[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


class ToolLoopLimit(Exception):
    """The model was still calling tools after `max_turns` replies."""

    def __init__(self, run: ToolRun) -> None:
        super().__init__(f"the model still called tools after {len(run.replies)} turns")
        self.run = run


@dataclass
class ToolRun:
    """A finished tool loop: the conversation (the caller's messages, every assistant
    turn and every tool result) and each reply, the last one the answer."""

    messages: list[pb.Message]
    replies: list[pb.GenerateResponse] = field(default_factory=list)

    @property
    def answer(self) -> pb.GenerateResponse:
        return self.replies[-1]


def tool_definition(name: str, function: ToolFunction) -> pb.Tool:
    """A `Tool` from a function's signature and docstring."""
    hints = get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        hint = hints.get(parameter.name)
        json_type = _JSON_TYPES.get(getattr(hint, "__origin__", hint))  # type: ignore[arg-type]
        properties[parameter.name] = {"type": json_type} if json_type else {}
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": properties, "required": required})
    return pb.Tool(name=name, description=inspect.getdoc(function) or "", input_schema=schema)


async def run_tool_loop(
    generate: Callable[..., Awaitable[pb.GenerateResponse]],
    messages: Sequence[pb.Message] | str,
    tools: Mapping[str, ToolFunction],
    *,
    definitions: Sequence[pb.Tool] = (),
    max_turns: int = 8,
    options: Mapping[str, Any] | None = None,
) -> ToolRun:
    """The loop behind `AsyncModelRouterClient.run_tools`."""
    if max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    if isinstance(messages, str):
        messages = [pb.Message(role=pb.ROLE_USER, content=messages)]
    specs = list(definitions) or [tool_definition(n, f) for n, f in tools.items()]
    run = ToolRun(messages=list(messages))
    for _ in range(max_turns):
        reply = await generate(run.messages, tools=specs, **dict(options or {}))
        run.replies.append(reply)
        if not reply.tool_calls:
            return run
        run.messages.append(
            pb.Message(
                role=pb.ROLE_ASSISTANT,
                content=reply.text,
                parts=[pb.Part(tool_call=call) for call in reply.tool_calls],
            )
        )
        results = [await _call(tools, call) for call in reply.tool_calls]
        run.messages.append(
            pb.Message(role=pb.ROLE_TOOL, parts=[pb.Part(tool_result=r) for r in results])
        )
    raise ToolLoopLimit(run)


async def _call(tools: Mapping[str, ToolFunction], call: pb.ToolCall) -> pb.ToolResult:
    """Run one call; a failing or unknown tool is reported to the model as an error."""
    function = tools.get(call.name)
    if function is None:
        return pb.ToolResult(
            tool_call_id=call.id, content=f"no tool named {call.name!r}", is_error=True
        )
    try:
        result = function(**json_format.MessageToDict(call.arguments))
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # the model is told, and may recover
        return pb.ToolResult(
            tool_call_id=call.id, content=f"{type(exc).__name__}: {exc}", is_error=True
        )
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return pb.ToolResult(tool_call_id=call.id, content=text)
