"""Idempotent turns through real gRPC on every store: a Generate or GenerateStream whose
`request_id` is already recorded in the conversation returns the recorded answer, calls no
model and appends nothing; two calls with one id at once store one turn."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from modelrouter_client import AsyncModelRouterClient, pb, system
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import ScriptedToolCall

from .conftest import StartRouter
from .redis_fixture import redis_url  # noqa: F401  # the fixture, used by name
from .status_details import details_of


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"store": "sqlite", "sqlite_path": str(tmp_path / "conversations.db")}
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return {"store": "redis", "redis_url": url}
    return {"store": "memory"}


async def stream_text(
    client: AsyncModelRouterClient, prompt: str, **options: Any
) -> tuple[str, pb.StreamFinish]:
    text: list[str] = []
    finish = pb.StreamFinish()
    async for event in client.stream(prompt, **options):
        kind = event.WhichOneof("event")
        if kind == "delta":
            text.append(event.delta.text)
        elif kind == "finish":
            finish = event.finish
    return "".join(text), finish


async def test_a_repeated_request_id_returns_the_recorded_answer(
    start_router: StartRouter, emulator: Emulator, store: dict[str, Any]
) -> None:
    client = await start_router(context=store)
    created = await client.create_conversation([system("Be brief.")])
    first = await client.generate("Hello", conversation_id=created.id, request_id="turn-1")
    assert not first.replayed
    calls = len(emulator.requests)

    again = await client.generate("Hello", conversation_id=created.id, request_id="turn-1")
    assert again.replayed and again.text == first.text and again.request_id == "turn-1"
    text, finish = await stream_text(
        client, "Hello", conversation_id=created.id, request_id="turn-1"
    )
    assert finish.replayed and text == first.text
    assert len(emulator.requests) == calls  # no model was called for either

    stored = await client.get_conversation(created.id)
    assert [m.message.content for m in stored.messages] == ["Be brief.", "Hello", first.text]
    assert [m.request_id for m in stored.messages] == ["", "turn-1", "turn-1"]

    # The same id with other messages is a caller mistake, not a replay.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.generate("Something else", conversation_id=created.id, request_id="turn-1")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = details_of(caught.value, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "request_id"

    # A new id is a new turn, on a stream as well.
    text, finish = await stream_text(
        client, "Next", conversation_id=created.id, request_id="turn-2"
    )
    assert not finish.replayed and text
    replayed = await client.generate("Next", conversation_id=created.id, request_id="turn-2")
    assert replayed.replayed and replayed.text == text
    assert (await client.get_conversation(created.id)).message_count == 5


async def test_two_calls_with_one_request_id_at_once_store_one_turn(
    start_router: StartRouter, emulator: Emulator, store: dict[str, Any]
) -> None:
    client = await start_router(context=store)
    created = await client.create_conversation([system("Be brief.")])
    # The first call's answer is slow to start, so the second reaches the model too
    # (both saw no recorded turn); whichever appends second must not append.
    emulator.enqueue(
        "*", Behavior(text="alpha answer", latency_s=1.0), Behavior(text="beta answer")
    )
    first = asyncio.create_task(
        client.generate("Hello", conversation_id=created.id, request_id="same")
    )
    await emulator.wait_for_request(1)
    second = await client.generate("Hello", conversation_id=created.id, request_id="same")
    first_reply = await first

    stored = await client.get_conversation(created.id)
    assert stored.message_count == 3
    answer = stored.messages[-1].message.content
    assert answer in {"alpha answer", "beta answer"}
    assert first_reply.text == second.text == answer
    assert [first_reply.replayed, second.replayed].count(True) == 1


async def test_a_stream_that_loses_the_race_ends_aborted(
    start_router: StartRouter, emulator: Emulator, store: dict[str, Any]
) -> None:
    client = await start_router(context=store)
    created = await client.create_conversation([system("Be brief.")])
    emulator.enqueue(
        "*", Behavior(text="alpha answer", latency_s=1.0), Behavior(text="beta answer")
    )
    streamed = asyncio.create_task(
        stream_text(client, "Hello", conversation_id=created.id, request_id="same")
    )
    await emulator.wait_for_request(1)
    unary = await client.generate("Hello", conversation_id=created.id, request_id="same")
    try:
        text, _ = await streamed
    except grpc.aio.AioRpcError as error:
        # The unary call stored first; the stream's own text already went out, so it
        # cannot be replaced: the caller is told to repeat it (which replays).
        assert error.code() == grpc.StatusCode.ABORTED
        assert "request_id" in (error.details() or "")
        assert not unary.replayed
    else:
        # The stream stored first; the unary call answered with the stream's turn.
        assert unary.replayed and text == unary.text
    stored = await client.get_conversation(created.id)
    assert stored.message_count == 3
    assert stored.messages[-1].message.content == unary.text


async def test_a_replayed_tool_call_turn_returns_its_tool_calls(
    start_router: StartRouter, emulator: Emulator, store: dict[str, Any]
) -> None:
    """An agent that retries a turn whose answer was a tool call must get the call back,
    not an empty STOP answer it would take for the model's last word."""
    emulator.set_behavior(
        "*", Behavior(tool_calls=(ScriptedToolCall("search", '{"q": "Seine"}'),), text="")
    )
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"q": {"type": "string"}}})
    tools = [pb.Tool(name="search", description="Search the web.", input_schema=schema)]
    client = await start_router(context=store)
    created = await client.create_conversation([system("Use tools.")])
    options: dict[str, Any] = {"conversation_id": created.id, "request_id": "t1", "tools": tools}
    first = await client.generate("Search the Seine.", **options)
    assert first.finish_reason == pb.FINISH_REASON_TOOL_CALL and len(first.tool_calls) == 1
    calls = len(emulator.requests)

    again = await client.generate("Search the Seine.", **options)
    _, finish = await stream_text(client, "Search the Seine.", **options)

    assert len(emulator.requests) == calls
    assert again.replayed and finish.replayed
    for replayed in (again, finish):
        assert replayed.finish_reason == pb.FINISH_REASON_TOOL_CALL
        assert list(replayed.tool_calls) == list(first.tool_calls)


async def test_the_call_that_loses_the_race_returns_the_recorded_tool_calls(
    start_router: StartRouter, emulator: Emulator, store: dict[str, Any]
) -> None:
    """Both callers of one id must get the stored turn's calls: the loser's own calls have
    other ids, and results sent for them would answer no call the conversation holds."""
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"q": {"type": "string"}}})
    tools = [pb.Tool(name="search", description="Search the web.", input_schema=schema)]
    client = await start_router(context=store)
    created = await client.create_conversation([system("Use tools.")])
    emulator.enqueue(
        "*",
        Behavior(tool_calls=(ScriptedToolCall("search", '{"q": "alpha"}'),), latency_s=1.0),
        Behavior(tool_calls=(ScriptedToolCall("search", '{"q": "beta"}'),)),
    )
    options: dict[str, Any] = {"conversation_id": created.id, "request_id": "same", "tools": tools}
    first = asyncio.create_task(client.generate("Search.", **options))
    await emulator.wait_for_request(1)
    second = await client.generate("Search.", **options)
    first_reply = await first

    stored = await client.get_conversation(created.id)
    (stored_call,) = [p.tool_call for p in stored.messages[-1].message.parts]
    for reply in (first_reply, second):
        assert list(reply.tool_calls) == [stored_call]
        assert reply.finish_reason == pb.FINISH_REASON_TOOL_CALL
    assert [first_reply.replayed, second.replayed].count(True) == 1
