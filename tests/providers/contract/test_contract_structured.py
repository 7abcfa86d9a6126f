"""Structured output over every provider against the emulator: OpenAI gets
`response_format` (json_schema, strict only where the schema meets strict mode's rules),
Claude gets the schema as a forced tool whose input comes back as the answer text."""

from __future__ import annotations

import json

import jsonschema
import pytest
from modelrouter_server.domain import (
    NO_TOOLS,
    FinishReason,
    Message,
    ProviderRequest,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TextChunk,
    Tool,
    ToolCallChunk,
    ToolSettings,
)
from modelrouter_server.emulator import Behavior

from ..support import Case, collect

pytestmark = pytest.mark.asyncio(loop_scope="module")

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["old", "big"]}},
    },
    "required": ["city", "population", "tags"],
    "additionalProperties": False,
}
LOOSE = {"type": "object", "properties": {"city": {"type": "string"}}}
SCHEMA = ResponseFormat(ResponseFormatType.JSON_SCHEMA, CITY, "city_facts", strict=True)


def json_request(
    case: Case, fmt: ResponseFormat, tools: ToolSettings = NO_TOOLS
) -> ProviderRequest:
    return ProviderRequest(
        model=case.model,
        messages=(Message(Role.USER, "Facts about Paris as JSON."),),
        max_output_tokens=256,
        timeout_s=10.0,
        response_format=fmt,
        tools=tools,
    )


def sent_body(case: Case) -> dict[str, object]:
    body = case.emulator.requests[-1].body
    assert isinstance(body, dict)
    return body


async def test_a_schema_reply_is_json_text_valid_against_it(case: Case) -> None:
    completion = await case.provider.complete(json_request(case, SCHEMA))

    assert completion.finish_reason is FinishReason.STOP
    assert completion.tool_calls == ()
    jsonschema.validate(json.loads(completion.text), CITY)
    body = sent_body(case)
    if case.api == "anthropic":
        assert body["tools"] == [
            {
                "name": "city_facts",
                "description": "Give the answer: call this with the reply as its input.",
                "input_schema": CITY,
            }
        ]
        assert body["tool_choice"] == {"type": "tool", "name": "city_facts"}
    else:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "city_facts", "schema": CITY, "strict": True},
        }


async def test_a_streamed_schema_reply_arrives_as_text(case: Case) -> None:
    unary = await case.provider.complete(json_request(case, SCHEMA))

    streamed = await collect(case.provider.stream(json_request(case, SCHEMA)))

    assert not any(isinstance(e, ToolCallChunk) for e in streamed.events)
    assert sum(isinstance(e, TextChunk) for e in streamed.events) > 1
    assert json.loads(streamed.text) == json.loads(unary.text)
    assert streamed.end.finish_reason is FinishReason.STOP


async def test_strict_is_asked_only_where_the_schema_allows_it(case: Case) -> None:
    loose = ResponseFormat(ResponseFormatType.JSON_SCHEMA, LOOSE, "loose", strict=True)

    await case.provider.complete(json_request(case, loose))

    body = sent_body(case)
    if case.api == "openai":
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "loose", "schema": LOOSE, "strict": False},
        }


async def test_json_object_mode(case: Case) -> None:
    fmt = ResponseFormat(ResponseFormatType.JSON_OBJECT)

    completion = await case.provider.complete(json_request(case, fmt))

    assert isinstance(json.loads(completion.text), dict)
    body = sent_body(case)
    if case.api == "openai":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


async def test_a_scripted_invalid_reply_comes_back_as_it_is(case: Case) -> None:
    # The provider passes what the model said; the router's validation judges it.
    case.emulator.set_behavior(case.model, Behavior(text='{"city": 3}'))

    completion = await case.provider.complete(json_request(case, SCHEMA))

    assert json.loads(completion.text) == {"city": 3}


async def test_structured_output_beside_tools_leaves_the_tools_callable(case: Case) -> None:
    lookup = Tool("lookup", "Look a city up.", LOOSE)

    await case.provider.complete(json_request(case, SCHEMA, ToolSettings((lookup,))))

    body = sent_body(case)
    tools = body["tools"]
    assert isinstance(tools, list)
    if case.api == "anthropic":
        assert [t["name"] for t in tools] == ["lookup", "city_facts"]
        assert body["tool_choice"] == {"type": "any"}
    else:
        assert [t["function"]["name"] for t in tools] == ["lookup"]
