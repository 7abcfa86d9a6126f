"""Structured output through gRPC: replies validated against the caller's JSON Schema,
an invalid reply asked of the next candidate once, then FAILED_PRECONDITION naming the
first violation; unary and streaming, both providers."""

from __future__ import annotations

import json
from typing import Any

import grpc
import jsonschema
import pytest
from google.protobuf import struct_pb2
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_client.errors import InvalidArgumentError, ModelRouterError
from modelrouter_server.emulator import Behavior, Emulator

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"

CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


def _format(schema: dict[str, Any], **fields: Any) -> pb.ResponseFormat:
    struct = struct_pb2.Struct()
    struct.update(schema)
    fields.setdefault("name", "city")
    return pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, schema=struct, **fields)


@pytest.mark.parametrize("model", [GPT, CLAUDE])
async def test_a_valid_reply_is_returned_as_json_text(
    router: AsyncModelRouterClient, model: str
) -> None:
    reply = await router.generate("Paris?", model=model, response_format=_format(CITY))

    assert reply.model == model
    assert reply.finish_reason == pb.FINISH_REASON_STOP
    jsonschema.validate(json.loads(reply.text), CITY)


async def test_an_invalid_reply_is_asked_of_the_next_candidate_once(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(text='{"city": "Paris", "population": "big"}'))

    reply = await router.generate("Paris?", response_format=_format(CITY))

    assert reply.model == CLAUDE and reply.fallback
    jsonschema.validate(json.loads(reply.text), CITY)
    assert [a.model for a in reply.attempts] == [GPT, CLAUDE]
    assert reply.usage.input_tokens > 0


async def test_invalid_twice_is_failed_precondition_naming_the_first_violation(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(text='{"city": 3, "population": 1}'))
    emulator.set_behavior(CLAUDE, Behavior(text='{"city": "Paris"}'))

    with pytest.raises(ModelRouterError) as caught:
        await router.generate("Paris?", response_format=_format(CITY))

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = caught.value.details() or ""
    assert "'population' is a required property" in details
    assert "$.city: 3 is not of type 'string'" in details


async def test_a_reply_that_is_not_json_is_invalid(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(text="Paris has two million people."))

    with pytest.raises(ModelRouterError) as caught:
        await router.generate(
            "Paris?", response_format=_format(CITY), disable_fallback=True, model=GPT
        )

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not JSON" in (caught.value.details() or "")


async def test_a_streamed_invalid_reply_ends_with_failed_precondition(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(text='{"city": "Paris", "population": -1.5}'))
    kinds: list[str | None] = []

    with pytest.raises(ModelRouterError) as caught:
        async for event in router.stream("Paris?", response_format=_format(CITY)):
            kinds.append(event.WhichOneof("event"))

    assert "delta" in kinds and "finish" not in kinds
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "$.population" in (caught.value.details() or "")


async def test_a_streamed_valid_reply_finishes(router: AsyncModelRouterClient) -> None:
    events = [e async for e in router.stream("Paris?", model=CLAUDE, response_format=_format(CITY))]

    text = "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")
    jsonschema.validate(json.loads(text), CITY)
    assert events[-1].finish.finish_reason == pb.FINISH_REASON_STOP


@pytest.mark.parametrize(
    ("fmt", "field"),
    [
        (_format({"type": "array"}), "response_format.schema.type"),
        (_format({"type": "object", "properties": {"a": {"type": 7}}}), "response_format.schema"),
        (pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA), "response_format.schema"),
        (_format(CITY, name="no spaces please"), "response_format.name"),
    ],
)
async def test_a_bad_format_is_refused_naming_the_field(
    router: AsyncModelRouterClient, fmt: pb.ResponseFormat, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await router.generate("hi", response_format=fmt)

    assert field in caught.value.field_violations
