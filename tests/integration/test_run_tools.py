"""The Python client's tool loop against a real router: tools derived from functions,
called with the model's arguments, results (and failures) sent back until the answer,
the turn limit enforced."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from modelrouter_client import AsyncModelRouterClient, ToolLoopLimit, pb, tool_definition
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import ScriptedToolCall

GPT = "gpt-4o-mini-2024-07-18"


def get_weather(city: str, days: int = 1) -> dict[str, object]:
    """The weather in a city for the next days."""
    return {"city": city, "days": days, "sky": "sunny"}


async def convert(amount: float, currency: str) -> str:
    """Convert an amount to euros."""
    raise ValueError(f"no rate for {currency}")


def test_a_definition_is_derived_from_the_signature() -> None:
    tool = tool_definition("get_weather", get_weather)

    assert tool.name == "get_weather"
    assert tool.description == "The weather in a city for the next days."
    assert json_format.MessageToDict(tool.input_schema) == {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    }


async def test_run_tools_calls_the_tools_and_returns_the_answer(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.enqueue(
        GPT,
        Behavior(
            tool_calls=(
                ScriptedToolCall("get_weather", json.dumps({"city": "Oslo", "days": 2})),
                ScriptedToolCall("convert", json.dumps({"amount": 3, "currency": "XYZ"})),
            )
        ),
        Behavior(text=" Sunny in Oslo; no rate for XYZ."),
    )

    run = await router.run_tools(
        "Weather in Oslo, and 3 XYZ in euros?",
        tools={"get_weather": get_weather, "convert": convert},
        model=GPT,
    )

    assert run.answer.text == " Sunny in Oslo; no rate for XYZ."
    assert len(run.replies) == 2
    roles = [m.role for m in run.messages]
    assert roles == [pb.ROLE_USER, pb.ROLE_ASSISTANT, pb.ROLE_TOOL]
    weather, rate = [p.tool_result for p in run.messages[2].parts]
    assert json.loads(weather.content) == {"city": "Oslo", "days": 2, "sky": "sunny"}
    assert not weather.is_error
    assert rate.is_error and rate.content == "ValueError: no rate for XYZ"
    # The router sent both results back, the failed one marked as such.
    sent = [r for r in emulator.requests if r.model == GPT][-1].body
    assert isinstance(sent, dict)
    assert sent["messages"][3]["content"] == "Error: ValueError: no rate for XYZ"


async def test_the_turn_limit_stops_a_model_that_keeps_calling(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(
        GPT, Behavior(tool_calls=(ScriptedToolCall("get_weather", '{"city": "Rome"}'),))
    )

    with pytest.raises(ToolLoopLimit) as caught:
        await router.run_tools("Weather?", tools={"get_weather": get_weather}, max_turns=3)

    assert len(caught.value.run.replies) == 3
