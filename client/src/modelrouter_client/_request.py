"""Building a GenerateRequest (or GenerateStreamRequest, the same fields) from keyword
arguments, shared by the async and sync clients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict, Unpack

from modelrouter.v1 import modelrouter_pb2 as pb


class GenerateOptions(TypedDict, total=False):
    """Everything a GenerateRequest can carry besides its messages (see the .proto)."""

    model: str
    task: pb.Task.ValueType
    max_output_tokens: int
    temperature: float
    reasoning_effort: pb.ReasoningEffort.ValueType
    thinking_budget_tokens: int
    stop: Sequence[str]
    request_id: str
    metadata: Mapping[str, str]
    disable_fallback: bool
    max_cost_usd: float
    conversation_id: str
    tools: Sequence[pb.Tool]
    tool_choice: pb.ToolChoice
    parallel_tool_calls: bool
    response_format: pb.ResponseFormat


def as_messages(messages: Sequence[pb.Message] | str) -> list[pb.Message]:
    """Messages as given, or one user message for a plain prompt."""
    if isinstance(messages, str):
        return [pb.Message(role=pb.ROLE_USER, content=messages)]
    return list(messages)


def generate_request(
    messages: Sequence[pb.Message] | str, **options: Unpack[GenerateOptions]
) -> pb.GenerateRequest:
    """A Generate request from messages (or one user prompt) and options."""
    request = pb.GenerateRequest(messages=as_messages(messages))
    _fill(request, options)
    return request


def generate_stream_request(
    messages: Sequence[pb.Message] | str, **options: Unpack[GenerateOptions]
) -> pb.GenerateStreamRequest:
    """A GenerateStream request from messages (or one user prompt) and options."""
    request = pb.GenerateStreamRequest(messages=as_messages(messages))
    _fill(request, options)
    return request


def _fill(request: pb.GenerateRequest | pb.GenerateStreamRequest, options: GenerateOptions) -> None:
    stop = options.pop("stop", ())
    metadata = options.pop("metadata", {})
    tools = options.pop("tools", ())
    tool_choice = options.pop("tool_choice", None)
    response_format = options.pop("response_format", None)
    request.stop.extend(stop)
    request.metadata.update(metadata)
    request.tools.extend(tools)
    if tool_choice is not None:
        request.tool_choice.CopyFrom(tool_choice)
    if response_format is not None:
        request.response_format.CopyFrom(response_format)
    for name, value in options.items():
        setattr(request, name, value)
