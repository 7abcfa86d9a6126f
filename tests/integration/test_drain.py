"""Graceful drain of a real `modelrouter serve` process on SIGTERM: health turns
NOT_SERVING at once, a new call is refused with UNAVAILABLE (the port stays open), a stream
in flight finishes within the grace; past the grace it ends with UNAVAILABLE (also when its
client stopped reading) and its conversation turn is not stored."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter_client import AsyncModelRouterClient, pb, system
from modelrouter_server.context.sqlite_store import SQLiteStore
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_testsupport.router_process import RouterProcess, start_router, stop_router

GPT = "gpt-4o-mini-2024-07-18"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@asynccontextmanager
async def _running(
    directory: Path, emulator: Emulator, **sections: Mapping[str, object]
) -> AsyncIterator[RouterProcess]:
    """A router for the `async with` block, stopped at its end whatever the test did."""
    overrides = {"resilience": {"inter_token_timeout_s": 600.0}, **sections}
    # In a thread: the emulator the router calls runs on this test's event loop.
    router = await asyncio.to_thread(
        start_router, directory, emulator_url=emulator.base_url, overrides=overrides
    )
    try:
        yield router
    finally:
        await asyncio.to_thread(stop_router, router)


async def _open_stream(
    client: AsyncModelRouterClient, conversation_id: str = ""
) -> AsyncIterator[pb.GenerateStreamResponse]:
    """A stream that has reached its first answer token (so it is in flight)."""
    stream = client.stream(
        "Tell me a story.",
        model=GPT,
        disable_fallback=True,
        conversation_id=conversation_id,
        timeout=60,
    )
    assert (await anext(stream)).WhichOneof("event") == "start"
    assert (await anext(stream)).WhichOneof("event") == "delta"
    return stream


async def test_sigterm_refuses_new_calls_and_lets_the_stream_in_flight_finish(
    tmp_path: Path, emulator: Emulator
) -> None:
    # About 3 s of answer: long enough to be in flight when the signal arrives.
    emulator.set_behavior("*", Behavior(output_tokens=30, tokens_per_second=10))
    async with _running(tmp_path, emulator, server={"shutdown_grace_s": 60.0}) as router:
        async with (
            grpc.aio.insecure_channel(router.target) as channel,
            AsyncModelRouterClient(channel=channel) as client,
        ):
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            assert (await watch.read()).status == _SERVING
            stream = await _open_stream(client)

            router.process.send_signal(signal.SIGTERM)

            assert (await watch.read()).status == _NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.list_models(timeout=10)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "shutting down" in (caught.value.details() or "")
            rest = [event async for event in stream]
            assert rest[-1].WhichOneof("event") == "finish"
        assert await asyncio.to_thread(router.process.wait, 30) == 0


async def test_a_stream_past_the_grace_ends_unavailable_and_its_turn_is_not_stored(
    tmp_path: Path, emulator: Emulator
) -> None:
    # One token, then the upstream stalls: the stream cannot finish within the grace.
    emulator.set_behavior("*", Behavior(output_tokens=30, stall_after_tokens=1, stall_s=3600))
    database = tmp_path / "conversations.db"
    async with _running(
        tmp_path,
        emulator,
        server={"shutdown_grace_s": 0.5},
        context={"store": "sqlite", "sqlite_path": str(database)},
    ) as router:
        async with AsyncModelRouterClient(router.target) as client:
            conversation = await client.create_conversation([system("Be brief.")], timeout=10)
            stream = await _open_stream(client, conversation.id)

            router.process.send_signal(signal.SIGTERM)

            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stream:
                    pass
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert "shut down before the call finished" in (caught.value.details() or "")
        assert await asyncio.to_thread(router.process.wait, 30) == 0
    store = await SQLiteStore.open(database)
    try:
        stored = await store.get(conversation.id)
    finally:
        await store.aclose()
    assert [m.message.content for m in stored.messages] == ["Be brief."]


async def test_a_stream_whose_client_stopped_reading_ends_unavailable_at_the_grace(
    tmp_path: Path, emulator: Emulator
) -> None:
    # A long answer at full speed: the router fills the client's 64 KB window and then
    # waits inside grpc's send, not in its own code, when the grace runs out.
    emulator.set_behavior("*", Behavior(output_tokens=60_000, thinking_tokens=0))
    async with _running(tmp_path, emulator, server={"shutdown_grace_s": 1.0}) as router:
        options = [("grpc.http2.bdp_probe", 0)]  # the window stays 64 KB
        async with (
            grpc.aio.insecure_channel(router.target, options=options) as channel,
            AsyncModelRouterClient(channel=channel) as client,
        ):
            stream = client.stream(
                "Write a very long answer.",
                model="claude-3-7-sonnet",
                max_output_tokens=60_000,
                disable_fallback=True,
                timeout=60,
            )
            assert (await anext(stream)).WhichOneof("event") == "start"

            router.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(router.process.wait, 30) == 0

            # The client reads only now: what the window held, then the status.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stream:
                    pass
            # grpc's words, not ours: the trailers of a stream cannot pass its unread
            # messages, so the stream ends when the server stops.
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE, caught.value.details()
    (done,) = [line for line in router.log().splitlines() if "request_done" in line]
    event = json.loads(done)  # the log is a file: JSON lines
    assert event["code"] == "UNAVAILABLE"
    assert "shut down before the call finished" in event["error"]
