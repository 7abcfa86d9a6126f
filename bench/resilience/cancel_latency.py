"""How fast a client's cancel reaches the provider: cancel N streams (and N unary calls)
mid-flight through real gRPC and measure, at the emulator, when the upstream HTTP
connection closed. Prints the distribution; run with `python -m bench.resilience.cancel_latency`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App, emulated_models
from modelrouter_server.config import load_config
from modelrouter_server.emulator import Behavior, Emulator

MODEL = "gpt-4o-mini-2024-07-18"


async def _stream_cancel(client: AsyncModelRouterClient, emulator: Emulator, n: int) -> float:
    """Sample `n` (1-based) since the emulator's last reset."""
    deltas = 0
    cancelled_at = 0.0
    async for event in client.stream("Go on.", model=MODEL, disable_fallback=True):
        if event.WhichOneof("event") == "delta":
            deltas += 1
            if deltas == 5:
                cancelled_at = time.monotonic()
                break
    records = await emulator.wait_for_disconnect(n)
    return records[-1].at - cancelled_at


async def _unary_cancel(client: AsyncModelRouterClient, emulator: Emulator, n: int) -> float:
    """Sample `n` (1-based) since the emulator's last reset."""
    task = asyncio.create_task(client.generate("Wait.", model=MODEL, disable_fallback=True))
    await emulator.wait_for_request(n)
    cancelled_at = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    records = await emulator.wait_for_disconnect(n)
    return records[-1].at - cancelled_at


def _describe(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms p95={p95:.1f} ms "
        f"max={ms[-1]:.1f} ms"
    )


async def main(runs: int) -> None:
    config = load_config()
    async with Emulator(emulated_models(config)) as emulator:
        app = await App.start(config, env={}, port=0, metrics_port=0, emulator=emulator)
        try:
            async with AsyncModelRouterClient(f"127.0.0.1:{app.port}") as client:
                # Each phase starts from a reset: the emulator's waits count since then.
                emulator.reset()
                emulator.set_behavior(MODEL, Behavior(tokens_per_second=50, output_tokens=5000))
                streams = [await _stream_cancel(client, emulator, n) for n in range(1, runs + 1)]
                emulator.reset()
                emulator.set_behavior(MODEL, Behavior(latency_s=30))
                unary = [await _unary_cancel(client, emulator, n) for n in range(1, runs + 1)]
        finally:
            await app.stop(grace_s=0)
    print("client cancel -> upstream HTTP connection closed (measured at the emulator)")
    print(_describe("streaming, cancel after 5 deltas", streams))
    print(_describe("unary, cancel while the provider is thinking", unary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
