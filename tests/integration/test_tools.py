"""Tool calls through gRPC: a real router, the official SDKs and the emulator.

What a caller of an agent loop relies on: calls come back whole (unary and streamed),
a tool loop keeps working when the serving provider changes between turns, a stream
broken inside a tool call ends with an error rather than half a call, models without
tools are skipped with a reason, bad tool input is refused naming the part, and a
conversation stores calls and results.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_client.errors import InvalidArgumentError, ModelRouterError
from modelrouter_server.config import RouterConfig, default_config_path
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import ScriptedToolCall

from .conftest import TEST_OVERRIDES, StartRouter

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"


def _schema(properties: dict[str, Any]) -> struct_pb2.Struct:
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": properties})
    return schema


WEATHER = pb.Tool(
    name="get_weather",
    description="The weather in a city now.",
    input_schema=_schema({"city": {"type": "string"}}),
)
SEARCH = pb.Tool(
    name="search", description="Search the web.", input_schema=_schema({"q": {"type": "string"}})
)
TOOLS = [WEATHER, SEARCH]


def _calls(*calls: tuple[str, dict[str, Any]]) -> Behavior:
    return Behavior(
        tool_calls=tuple(ScriptedToolCall(name, json.dumps(args)) for name, args in calls)
    )


def _assistant(response: pb.GenerateResponse) -> pb.Message:
    """The reply as the next turn's assistant message: its text and its tool calls."""
    return pb.Message(
        role=pb.ROLE_ASSISTANT,
        content=response.text,
        parts=[pb.Part(tool_call=call) for call in response.tool_calls],
    )


def _results(*results: tuple[str, str, bool]) -> pb.Message:
    return pb.Message(
        role=pb.ROLE_TOOL,
        parts=[
            pb.Part(tool_result=pb.ToolResult(tool_call_id=i, content=c, is_error=e))
            for i, c, e in results
        ],
    )


def _arguments(call: pb.ToolCall) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(call.arguments)


def _sent(emulator: Emulator, model: str) -> dict[str, Any]:
    body = [r for r in emulator.requests if r.model == model][-1].body
    assert isinstance(body, dict)
    return body


# --- calls come back ---------------------------------------------------------------------


async def test_generate_returns_parallel_tool_calls(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, _calls(("get_weather", {"city": "Paris"}), ("search", {"q": "x"})))

    reply = await router.generate("Weather in Paris? And search x.", tools=TOOLS)

    assert reply.finish_reason == pb.FINISH_REASON_TOOL_CALL
    assert [(c.name, _arguments(c)) for c in reply.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("search", {"q": "x"}),
    ]
    assert all(c.id.startswith("call_") for c in reply.tool_calls)
    assert [t["function"]["name"] for t in _sent(emulator, GPT)["tools"]] == [
        "get_weather",
        "search",
    ]


@pytest.mark.parametrize("model", [GPT, CLAUDE])
async def test_stream_sends_tool_call_deltas_and_the_whole_calls_at_the_finish(
    router: AsyncModelRouterClient, emulator: Emulator, model: str
) -> None:
    emulator.set_behavior(model, _calls(("get_weather", {"city": "Paris"}), ("search", {"q": "x"})))

    events = [e async for e in router.stream("Weather?", model=model, tools=TOOLS)]

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    deltas = [e.tool_call_delta for e in events if e.WhichOneof("event") == "tool_call_delta"]
    openings = [d for d in deltas if d.id]
    assert [(d.index, d.name) for d in openings] == [(0, "get_weather"), (1, "search")]
    joined = "".join(d.arguments_json for d in deltas if d.index == 0)
    assert json.loads(joined) == {"city": "Paris"}
    finish = events[-1].finish
    assert finish.finish_reason == pb.FINISH_REASON_TOOL_CALL
    assert [c.id for c in finish.tool_calls] == [d.id for d in openings]
    assert _arguments(finish.tool_calls[1]) == {"q": "x"}


# --- a tool loop across providers --------------------------------------------------------


async def test_a_tool_loop_fails_over_from_claude_to_gpt_and_back_and_completes(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    history: list[pb.Message] = [pb.Message(role=pb.ROLE_USER, content="Plan my day in Paris.")]
    # Turn 1: Claude calls a tool.
    emulator.enqueue(CLAUDE, _calls(("get_weather", {"city": "Paris"})))
    first = await router.generate(history, model=CLAUDE, tools=TOOLS)
    assert first.model == CLAUDE and first.finish_reason == pb.FINISH_REASON_TOOL_CALL
    claude_id = first.tool_calls[0].id
    assert claude_id.startswith("toolu_")
    history += [_assistant(first), _results((claude_id, "18 C, sunny", False))]

    # Turn 2: Claude is overloaded; GPT-4o-mini takes the Claude-made history and calls
    # a tool of its own.
    emulator.enqueue(CLAUDE, Behavior(error_status=529), Behavior(error_status=529))
    emulator.enqueue(GPT, _calls(("search", {"q": "museums"})))
    second = await router.generate(history, model=CLAUDE, tools=TOOLS)
    assert second.model == GPT and second.fallback
    sent = _sent(emulator, GPT)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == claude_id
    assert sent[2] == {"role": "tool", "tool_call_id": claude_id, "content": "18 C, sunny"}
    gpt_id = second.tool_calls[0].id
    history += [_assistant(second), _results((gpt_id, "search failed: timeout", True))]

    # Turn 3: back on Claude, with ids from both providers in the history; it answers.
    emulator.enqueue(CLAUDE, Behavior(text=" Louvre in the morning, then a walk."))
    third = await router.generate(history, model=CLAUDE, tools=TOOLS)
    assert third.model == CLAUDE
    assert third.finish_reason == pb.FINISH_REASON_STOP
    assert third.text == " Louvre in the morning, then a walk."
    turns = _sent(emulator, CLAUDE)["messages"]
    assert turns[3]["content"][0]["id"] == gpt_id
    # The newest turn's last block carries the prompt cache's breakpoint.
    assert turns[4]["content"][0].pop("cache_control") == {"type": "ephemeral"}
    assert turns[4]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": gpt_id,
        "content": "search failed: timeout",
        "is_error": True,
    }


# --- a stream broken around a tool call ----------------------------------------------------


async def test_a_stream_broken_inside_a_tool_call_ends_with_an_error_not_a_finish(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    behavior = _calls(("get_weather", {"city": "Paris, France"}))
    emulator.set_behavior(GPT, Behavior(tool_calls=behavior.tool_calls, drop_after_tokens=3))
    events: list[pb.GenerateStreamResponse] = []

    with pytest.raises(ModelRouterError) as caught:
        async for event in router.stream("Weather?", tools=TOOLS):
            events.append(event)

    kinds = [e.WhichOneof("event") for e in events]
    assert "tool_call_delta" in kinds
    assert "finish" not in kinds
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "inside a tool call" in (caught.value.details() or "")


async def test_a_stream_broken_before_any_tool_piece_fails_over_transparently(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(
        GPT,
        Behavior(tool_calls=_calls(("search", {"q": "x"})).tool_calls, drop_after_tokens=0),
    )
    emulator.set_behavior(CLAUDE, _calls(("search", {"q": "y"})))

    events = [e async for e in router.stream("Search y.", tools=TOOLS)]

    kinds = [e.WhichOneof("event") for e in events]
    assert "resume" not in kinds
    assert events[0].start.model == CLAUDE
    finish = events[-1].finish
    assert finish.model == CLAUDE and finish.fallback
    assert [_arguments(c) for c in finish.tool_calls] == [{"q": "y"}]


# --- capability and validation -----------------------------------------------------------


async def test_a_model_without_tools_is_skipped_with_a_reason(
    start_router: StartRouter, emulator: Emulator
) -> None:
    raw = tomllib.loads(default_config_path().read_text())
    for name, values in TEST_OVERRIDES.items():
        raw.setdefault(name, {}).update(values)
    raw["models"][GPT]["capabilities"]["tools"] = False
    router = await start_router(config=RouterConfig.model_validate(raw))
    emulator.set_behavior(CLAUDE, _calls(("search", {"q": "x"})))

    reply = await router.generate("Search x.", tools=TOOLS)

    assert reply.model == CLAUDE
    skipped = reply.attempts[0]
    assert skipped.model == GPT
    assert skipped.outcome == pb.ATTEMPT_OUTCOME_SKIPPED_CAPABILITY
    assert "does not take tools" in skipped.error


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            [
                pb.Message(role=pb.ROLE_USER, content="hi"),
                pb.Message(
                    role=pb.ROLE_ASSISTANT,
                    parts=[pb.Part(tool_call=pb.ToolCall(id="c1", name="search"))],
                ),
                _results(("c2", "x", False)),
            ],
            "messages[2].parts[0].tool_result.tool_call_id",
        ),
        (
            [
                pb.Message(role=pb.ROLE_USER, content="hi"),
                pb.Message(
                    role=pb.ROLE_ASSISTANT,
                    parts=[pb.Part(tool_call=pb.ToolCall(id="c1", name="search"))],
                ),
                pb.Message(role=pb.ROLE_USER, content="and?"),
            ],
            "messages[2].role",
        ),
        (
            [pb.Message(role=pb.ROLE_USER, parts=[pb.Part(tool_call=pb.ToolCall(id="c1"))])],
            "messages[0].parts[0]",
        ),
        (
            [pb.Message(role=pb.ROLE_USER, content="hi"), _results(("c1", "x", False))],
            "messages[1].role",
        ),
        (
            [pb.Message(role=pb.ROLE_USER, parts=[pb.Part(image=pb.Image(data=b"x"))])],
            "messages[0].parts[0].image.media_type",
        ),
    ],
)
async def test_bad_tool_messages_are_refused_naming_the_part(
    router: AsyncModelRouterClient, messages: list[pb.Message], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await router.generate(messages, tools=TOOLS)

    assert field in caught.value.field_violations


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"tools": [WEATHER, WEATHER]}, "tools[1].name"),
        ({"tools": [pb.Tool(name="has space")]}, "tools[0].name"),
        (
            {"tools": TOOLS, "tool_choice": pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_TOOL, name="x")},
            "tool_choice.name",
        ),
        ({"tool_choice": pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED)}, "tool_choice.mode"),
    ],
)
async def test_bad_tools_are_refused_naming_the_field(
    router: AsyncModelRouterClient, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await router.generate("hi", **options)

    assert field in caught.value.field_violations


# --- conversations -------------------------------------------------------------------------


async def test_a_conversation_stores_tool_calls_and_results(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    conversation = await router.create_conversation()
    emulator.enqueue(GPT, _calls(("get_weather", {"city": "Oslo"})))
    first = await router.generate("Weather in Oslo?", conversation_id=conversation.id, tools=TOOLS)
    call_id = first.tool_calls[0].id

    emulator.enqueue(GPT, Behavior(text=" Cold."))
    second = await router.generate(
        [_results((call_id, "-3 C", False))], conversation_id=conversation.id, tools=TOOLS
    )

    assert second.text == " Cold."
    stored = [m.message for m in (await router.get_conversation(conversation.id)).messages]
    assert [m.role for m in stored] == [
        pb.ROLE_USER,
        pb.ROLE_ASSISTANT,
        pb.ROLE_TOOL,
        pb.ROLE_ASSISTANT,
    ]
    assert stored[1].parts[0].tool_call.id == call_id
    assert _arguments(stored[1].parts[0].tool_call) == {"city": "Oslo"}
    assert stored[2].parts[0].tool_result.content == "-3 C"
    sent = _sent(emulator, GPT)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call_id
    assert sent[2]["tool_call_id"] == call_id


@pytest.mark.parametrize("model", [GPT, CLAUDE])
async def test_tool_calls_count_as_output_when_the_provider_sends_no_usage(
    router: AsyncModelRouterClient, emulator: Emulator, model: str
) -> None:
    """The router's own count covers what the model generated: a reply that is only a
    tool call is not zero output tokens (budgets and cost would miss it)."""
    arguments = {"q": "the population of every city on the river Seine, by year"}
    emulator.set_behavior(
        model,
        Behavior(tool_calls=_calls(("search", arguments)).tool_calls, text="", omit_usage=True),
    )

    reply = await router.generate("Search.", model=model, tools=TOOLS, disable_fallback=True)
    events = [
        e async for e in router.stream("Search.", model=model, tools=TOOLS, disable_fallback=True)
    ]

    assert [_arguments(c) for c in reply.tool_calls] == [arguments]
    assert reply.usage.count_method != pb.COUNT_METHOD_PROVIDER
    streamed = events[-1].finish.usage.output_tokens
    assert streamed >= 10
    # Counted from the same call (the unary one from its parsed arguments): close, not 0.
    assert reply.usage.output_tokens >= streamed // 2
