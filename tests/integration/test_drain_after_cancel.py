"""A call its caller already cancelled, still settling when the drain grace runs out, ends
as CANCELLED: the drain has nobody to send UNAVAILABLE to, and must not log it as a bug."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import make_config

GPT = "gpt-4o-mini-2024-07-18"


def _generate_codes(app: App) -> set[str]:
    codes = set()
    for family in app.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "modelrouter_requests_total" and sample.labels["rpc"] == "Generate":
                codes.add(sample.labels["code"])
    return codes


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
    assert _generate_codes(app) == {"CANCELLED"}
