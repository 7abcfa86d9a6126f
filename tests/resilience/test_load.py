"""Load: ~200 concurrent streams through the real stack while the primary model fails.

The primary (gpt-4o-mini) answers 500 to most calls for the first second, and some of
its streams drop mid-answer; then it recovers. Every request must still complete with the
full, identical answer (failover before the first token, resume after it), the primary's
circuit must open during the outage and close again after it.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.resilience import (
    ChainFinished,
    ChainResumed,
    CircuitState,
    CircuitTransition,
)

from .emulated import CLAUDE, GPT, emulated_config, rig_for, text_of

REQUESTS = 200
SPREAD_S = 2.0
"""Request starts are spread over this long, so the circuit sees the outage and recovery."""
OUTAGE_S = 1.0
MID_STREAM_DROPS = 3
"""Streams that drop mid-answer, at the start of the outage and again right after it: fewer
than `breaker_fail_max`, so they exercise resume without deciding the circuit alone."""


@pytest.mark.load
async def test_200_concurrent_streams_survive_a_failing_primary(emu: Emulator) -> None:
    config = emulated_config(
        max_attempts_per_model=2,
        breaker_fail_max=5,
        breaker_reset_timeout_s=0.2,
        # 200 streams, the SDKs and the emulator share one event loop here: generous
        # token timeouts keep CPU contention from passing for a slow model.
        ttft_timeout_s=30.0,
        inter_token_timeout_s=30.0,
    )
    async with rig_for(emu, config) as rig:
        # Warm both paths up (SDK clients, the emulator's tokenizers) before timing.
        expected = text_of(await rig.stream(rig.plan(model=CLAUDE)))
        assert text_of(await rig.stream(rig.plan(model=GPT))) == expected
        emu.reset()
        streaming = Behavior(tokens_per_second=100.0)
        emu.set_behavior("*", streaming)
        emu.set_behavior(GPT, Behavior(tokens_per_second=100.0, error_status=500, error_rate=0.7))
        dropping = Behavior(tokens_per_second=100.0, drop_after_tokens=6)
        emu.enqueue(GPT, *[dropping] * MID_STREAM_DROPS)

        async def one(index: int) -> tuple[str, ChainFinished, float]:
            await asyncio.sleep(index * SPREAD_S / REQUESTS)
            started = time.monotonic()
            events = await rig.stream(rig.plan(), deadline=started + 90.0)
            end = events[-1]
            assert isinstance(end, ChainFinished)
            resumed = sum(isinstance(e, ChainResumed) for e in events)
            assert resumed == len(end.resumed_at_chars)
            return text_of(events), end, time.monotonic() - started

        opened = asyncio.Event()

        def on_transition(transition: CircuitTransition) -> None:
            if transition.model == GPT and transition.to_state is CircuitState.OPEN:
                opened.set()

        rig.breakers.add_observer(on_transition)

        async def recover() -> float:
            # The outage lasts OUTAGE_S and until the circuit has opened: on a starved
            # event loop the requests may start late, and recovering before they saw the
            # outage would test nothing (and pile both batches of drops together).
            await asyncio.sleep(OUTAGE_S)
            await asyncio.wait_for(opened.wait(), timeout=120)
            emu.set_behavior(GPT, streaming)
            emu.enqueue(GPT, *[dropping] * MID_STREAM_DROPS)
            return time.monotonic()

        started = time.monotonic()
        recovery = asyncio.create_task(recover())
        results = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
        recovered_at = await recovery
        elapsed = time.monotonic() - started

    primary_calls = [r for r in emu.requests if r.model == GPT]
    primary_failed = [r for r in primary_calls if r.outcome != "ok"]
    outage_calls = [r for r in primary_calls if r.started_at < recovered_at]
    outage_failed = [r for r in outage_calls if r.outcome != "ok"]
    completed = [text for text, _, _ in results if text == expected]
    resumed = [end for _, end, _ in results if end.resumed_at_chars]
    fallbacks = [end for _, end, _ in results if end.fallback]
    latencies = sorted(latency for _, _, latency in results)
    moves = rig.moves(GPT)
    print(
        f"\nload: {REQUESTS} streaming requests in {elapsed:.2f}s"
        f"\n  primary upstream calls: {len(primary_calls)}, failed: {len(primary_failed)}"
        f" ({len(primary_failed) / max(len(primary_calls), 1):.0%});"
        f" during the outage: {len(outage_calls)}, failed: {len(outage_failed)}"
        f" ({len(outage_failed) / max(len(outage_calls), 1):.0%})"
        f"\n  completed with the full answer: {len(completed)}/{REQUESTS}"
        f" ({len(completed) / REQUESTS:.0%})"
        f"\n  served by the fallback: {len(fallbacks)}, resumed mid-stream: {len(resumed)}"
        f"\n  latency p50 {statistics.median(latencies) * 1000:.0f} ms,"
        f" p95 {latencies[int(0.95 * len(latencies)) - 1] * 1000:.0f} ms"
        f"\n  breaker transitions ({len(moves)}): " + ", ".join(f"{a}->{b}" for a, b in moves)
    )

    assert len(results) == REQUESTS
    assert len(completed) == REQUESTS, "a request lost or garbled its answer"
    assert len(outage_failed) / len(outage_calls) > 0.5
    # The open circuit spared the failing primary most of the outage's traffic.
    assert len(outage_calls) < REQUESTS * OUTAGE_S / SPREAD_S
    assert resumed, "no stream was resumed mid-answer"
    assert ("closed", "open") in moves
    assert moves[-1] == ("half_open", "closed")
    assert rig.breakers.state("openai", GPT) is CircuitState.CLOSED
