"""A call its caller cancelled, still running when the drain grace runs out, ends as
CANCELLED: the drain has nobody to send UNAVAILABLE to, and must not log it as a bug
(INTERNAL), whether the handler or only grpc's core knew the caller had left."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import make_config, request_counts
from .logcapture import captured_log

GPT = "gpt-4o-mini-2024-07-18"


async def test_a_cancelled_call_ended_by_the_drain_is_counted_cancelled(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(latency_s=600))
    ledger = tmp_path / "ledger.db"
    config = make_config(ledger={"store": "sqlite", "sqlite_path": str(ledger)})
    app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
    blocker = sqlite3.connect(ledger, isolation_level=None)
    try:
        async with AsyncModelRouterClient(f"127.0.0.1:{app.port}") as client:
            call = asyncio.create_task(client.generate("Wait.", model=GPT, timeout=600))
            await emulator.wait_for_request(1)
            # Another process holds the ledger's write lock, so charging the cancelled
            # call's bound waits for it (up to the ledger's 10 s busy timeout).
            blocker.execute("BEGIN IMMEDIATE")
            call.cancel()
            await emulator.wait_for_disconnect(1)
            stopping = asyncio.create_task(app.stop(grace_s=0))
            # Admission goes idle only once the drain has ended the settling call.
            assert await app.admission.wait_idle(60)
            blocker.execute("ROLLBACK")
            await stopping
    finally:
        blocker.close()
    assert set(request_counts(app, "Generate")) == {"CANCELLED"}


async def test_streams_whose_callers_left_unnoticed_end_cancelled_at_the_drain(
    emulator: Emulator,
) -> None:
    # Callers that all leave at once, the drain's grace already over: grpc's core learns
    # of the cancels before the event loop has delivered them to every handler, so many
    # handlers try to send the drain's UNAVAILABLE on a call their core already ended.
    streams_count, channels_count = 200, 10
    emulator.set_behavior(GPT, Behavior(stall_after_tokens=1, stall_s=600))
    config = make_config(resilience={"inter_token_timeout_s": 600.0})
    app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
    target = f"127.0.0.1:{app.port}"
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(channels_count)
    ]
    with captured_log() as log:
        clients = [AsyncModelRouterClient(channel=channel) for channel in channels]
        streams = [
            clients[i % channels_count].stream(
                "Wait.", model=GPT, disable_fallback=True, timeout=600
            )
            for i in range(streams_count)
        ]
        await asyncio.gather(*(anext(stream) for stream in streams))
        # The client's streams are async generators.
        await asyncio.gather(*(stream.aclose() for stream in streams))  # type: ignore[attr-defined]
        await asyncio.gather(*(channel.close(None) for channel in channels))
        await app.stop(grace_s=0)
    assert request_counts(app, "GenerateStream") == {"CANCELLED": streams_count}
    # The race this test is for did happen: some drain statuses found their call over.
    events = [e["event"] for e in log.events()]
    assert "rpc_status_not_sent" in events
