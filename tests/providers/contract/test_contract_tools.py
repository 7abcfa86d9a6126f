"""Tool calls over every provider against the emulator: tools and choices sent in each
API's terms, calls read back (unary and streamed, parallel), results and errors sent
back, and histories whose ids come from the other provider.

The official SDKs talk real HTTP to the emulator, which checks tool histories the way
each API does (every call answered in the next message, ids of the allowed form), so a
translation the real API would refuse fails here too.
"""

from __future__ import annotations

import json

import pytest
from modelrouter_server.domain import (
    FinishReason,
    Message,
    ProviderRequest,
    Role,
    TextChunk,
    Tool,
    ToolCall,
    ToolCallChunk,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
)
from modelrouter_server.emulator import Behavior
from modelrouter_server.emulator.behavior import ScriptedToolCall
from modelrouter_server.errors import StreamInterrupted

from ..support import Case, collect, collect_until_error

pytestmark = pytest.mark.asyncio(loop_scope="module")

WEATHER = Tool(
    "get_weather",
    "The weather in a city now.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = Tool("get_time", "The local time in a city.", {"type": "object", "properties": {}})
TOOLS = ToolSettings((WEATHER, TIME))

TWO_CALLS = (
    ScriptedToolCall("get_weather", json.dumps({"city": "Paris", "days": [1, 2]})),
    ScriptedToolCall("get_time", json.dumps({"city": "Oslo"})),
)


def tool_request(case: Case, *messages: Message, tools: ToolSettings = TOOLS) -> ProviderRequest:
    return ProviderRequest(
        model=case.model,
        messages=messages or (Message(Role.USER, "Weather in Paris, time in Oslo?"),),
        max_output_tokens=256,
        timeout_s=10.0,
        tools=tools,
    )


def sent_body(case: Case) -> dict[str, object]:
    body = case.emulator.requests[-1].body
    assert isinstance(body, dict)
    return body


def history(call_id: str, *, is_error: bool = False) -> tuple[Message, ...]:
    """A finished tool exchange with `call_id`, and the user's next question."""
    return (
        Message(Role.USER, "Weather in Paris?"),
        Message(
            Role.ASSISTANT,
            "Let me look.",
            parts=(ToolCall(call_id, "get_weather", {"city": "Paris"}),),
        ),
        Message(Role.TOOL, "", parts=(ToolResult(call_id, "18 C, sunny", is_error=is_error),)),
    )


# --- calls read back -------------------------------------------------------------------


async def test_complete_returns_parallel_tool_calls_with_parsed_arguments(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(tool_calls=TWO_CALLS))

    completion = await case.provider.complete(tool_request(case))

    assert completion.finish_reason is FinishReason.TOOL_CALL
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": [1, 2]}),
        ("get_time", {"city": "Oslo"}),
    ]
    prefix = "toolu_" if case.api == "anthropic" else "call_"
    assert all(c.id.startswith(prefix) for c in completion.tool_calls)
    assert len({c.id for c in completion.tool_calls}) == 2


async def test_stream_yields_tool_call_pieces_that_join_into_the_final_calls(case: Case) -> None:
    case.emulator.set_behavior(case.model, Behavior(text=" Checking.", tool_calls=TWO_CALLS))

    streamed = await collect(case.provider.stream(tool_request(case)))

    pieces = [e for e in streamed.events if isinstance(e, ToolCallChunk)]
    assert streamed.text == " Checking."
    # The first piece of each call names it; the rest are fragments of its JSON.
    firsts = [p for p in pieces if p.id]
    assert [(p.index, p.name) for p in firsts] == [(0, "get_weather"), (1, "get_time")]
    assert len(pieces) > 4, "arguments should arrive in several fragments"
    joined = {i: "".join(p.arguments_json for p in pieces if p.index == i) for i in (0, 1)}
    assert json.loads(joined[0]) == {"city": "Paris", "days": [1, 2]}
    end = streamed.end
    assert end.finish_reason is FinishReason.TOOL_CALL
    assert [c.id for c in end.tool_calls] == [p.id for p in firsts]
    assert end.tool_calls[1].arguments == {"city": "Oslo"}
    # Text came before the calls, as it does from the real APIs.
    first_call = streamed.events.index(firsts[0])
    assert all(not isinstance(e, TextChunk) for e in streamed.events[first_call:])


async def test_stream_broken_inside_a_tool_call_raises_after_the_pieces_sent(
    case: Case,
) -> None:
    case.emulator.set_behavior(case.model, Behavior(tool_calls=TWO_CALLS[:1], drop_after_tokens=2))

    events, error = await collect_until_error(case.provider.stream(tool_request(case)))

    assert isinstance(error, StreamInterrupted)
    assert any(isinstance(e, ToolCallChunk) and e.arguments_json for e in events)


async def test_arguments_that_are_not_json_fail_the_stream(case: Case) -> None:
    broken = (ScriptedToolCall("get_weather", '{"city": "Par'),)
    case.emulator.set_behavior(case.model, Behavior(tool_calls=broken))

    _, error = await collect_until_error(case.provider.stream(tool_request(case)))

    assert isinstance(error, StreamInterrupted)
    assert "not JSON" in error.message


# --- tools and choices sent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "anthropic", "openai"),
    [
        (ToolChoice(), {"type": "auto"}, "auto"),
        (ToolChoice(ToolChoiceMode.NONE), {"type": "none"}, "none"),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"type": "any"}, "required"),
        (
            ToolChoice(ToolChoiceMode.TOOL, "get_time"),
            {"type": "tool", "name": "get_time"},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
async def test_tools_and_choice_are_sent_in_each_apis_terms(
    case: Case, choice: ToolChoice, anthropic: object, openai: object
) -> None:
    await case.provider.complete(tool_request(case, tools=ToolSettings((WEATHER, TIME), choice)))

    body = sent_body(case)
    tools = body["tools"]
    assert isinstance(tools, list) and len(tools) == 2
    if case.api == "anthropic":
        assert tools[0] == {
            "name": "get_weather",
            "input_schema": WEATHER.input_schema,
            "description": WEATHER.description,
        }
        assert body["tool_choice"] == anthropic
    else:
        assert tools[0] == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER.input_schema,
                "description": WEATHER.description,
            },
        }
        assert body["tool_choice"] == openai


async def test_parallel_calls_can_be_turned_off(case: Case) -> None:
    await case.provider.complete(tool_request(case, tools=ToolSettings((WEATHER,), parallel=False)))

    body = sent_body(case)
    if case.api == "anthropic":
        assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    else:
        assert body["parallel_tool_calls"] is False


async def test_no_tools_sends_no_tool_fields(case: Case) -> None:
    await case.provider.complete(tool_request(case, tools=ToolSettings()))

    body = sent_body(case)
    assert "tools" not in body and "tool_choice" not in body


# --- histories -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call_id", ["toolu_01A09q90qw90lq917835lq9", "call_Ab12Cd34Ef56Gh78Ij90Kl12"]
)
async def test_a_history_from_either_provider_is_sent_with_its_ids(
    case: Case, call_id: str
) -> None:
    completion = await case.provider.complete(tool_request(case, *history(call_id)))

    assert completion.finish_reason is FinishReason.STOP
    messages = sent_body(case)["messages"]
    assert isinstance(messages, list)
    if case.api == "anthropic":
        assistant, results = messages[1], messages[2]
        assert assistant["content"][1] == {
            "type": "tool_use",
            "id": call_id,
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        assert results == {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": "18 C, sunny",
                    "is_error": False,
                }
            ],
        }
    else:
        assistant, result = messages[1], messages[2]
        assert assistant["content"] == "Let me look."
        assert assistant["tool_calls"] == [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ]
        assert result == {"role": "tool", "tool_call_id": call_id, "content": "18 C, sunny"}


async def test_an_id_the_api_refuses_is_mapped_the_same_in_call_and_result(case: Case) -> None:
    # Neither API takes this one: dots for Anthropic, 60 characters for OpenAI.
    odd = "gemini.call." + "x" * 48

    completion = await case.provider.complete(tool_request(case, *history(odd)))

    assert completion.finish_reason is FinishReason.STOP
    messages = sent_body(case)["messages"]
    assert isinstance(messages, list)
    if case.api == "anthropic":
        sent_call = messages[1]["content"][1]["id"]
        sent_result = messages[2]["content"][0]["tool_use_id"]
    else:
        sent_call = messages[1]["tool_calls"][0]["id"]
        sent_result = messages[2]["tool_call_id"]
    assert sent_call == sent_result != odd


async def test_a_failed_tool_is_marked_as_an_error(case: Case) -> None:
    await case.provider.complete(tool_request(case, *history("call_1", is_error=True)))

    messages = sent_body(case)["messages"]
    assert isinstance(messages, list)
    if case.api == "anthropic":
        assert messages[2]["content"][0]["is_error"] is True
    else:
        assert messages[2]["content"] == "Error: 18 C, sunny"


async def test_the_emulator_refuses_a_call_without_its_result(case: Case) -> None:
    # What the real APIs refuse, so the translation tests above can fail.
    unanswered = (
        Message(Role.USER, "Weather?"),
        Message(Role.ASSISTANT, "", parts=(ToolCall("call_9", "get_weather", {}),)),
        Message(Role.USER, "Never mind."),
    )

    with pytest.raises(Exception) as caught:
        await case.provider.complete(tool_request(case, *unanswered))

    assert "call_9" in str(caught.value)
