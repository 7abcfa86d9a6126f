"""Load: 200 concurrent streams through the real stack while the primary model fails.

The first half of the requests meets an outage: the primary (gpt-4o-mini) answers 500 to
most calls and some of its streams drop mid-answer. Once its circuit has opened, the
primary recovers, the breaker's cool-down is ended on its (fake) clock, and the second half
arrives. Every request must still complete with the full, identical answer (failover
before the first token, resume after it); the circuit must open during the outage and close
again after it. Phases follow events (the circuit opened, the outage's requests ended), not
the wall clock, so a starved event loop changes the timings, never the outcome.
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
from modelrouter_testsupport.fake_clock import FakeClock

from .emulated import CLAUDE, GPT, emulated_config, rig_for, text_of

REQUESTS = 200
"""Half arrive during the outage, half after the recovery."""
SPREAD_S = 1.0
"""Each half's starts are spread over this long: a load shape, not a wait for anything."""
MID_STREAM_DROPS = 3
"""Streams that drop mid-answer, at the start of the outage and again after it: fewer
than `breaker_fail_max`, so they exercise resume without deciding the circuit alone."""
COOL_DOWN_S = 30.0
"""Longer than any run: only the test's clock ends the cool-down."""


@pytest.mark.load
async def test_200_concurrent_streams_survive_a_failing_primary(emu: Emulator) -> None:
    config = emulated_config(
        max_attempts_per_model=2,
        breaker_fail_max=5,
        breaker_reset_timeout_s=COOL_DOWN_S,
        # 200 streams, the SDKs and the emulator share one event loop here: generous
        # token timeouts keep CPU contention from passing for a slow model.
        ttft_timeout_s=30.0,
        inter_token_timeout_s=30.0,
    )
    clock = FakeClock()
    async with rig_for(emu, config, breaker_clock=clock) as rig:
        # Warm both paths up (SDK clients, the emulator's tokenizers) before the load.
        expected = text_of(await rig.stream(rig.plan(model=CLAUDE)))
        assert text_of(await rig.stream(rig.plan(model=GPT))) == expected
        emu.reset()
        streaming = Behavior(tokens_per_second=100.0)
        emu.set_behavior("*", streaming)
        emu.set_behavior(GPT, Behavior(tokens_per_second=100.0, error_status=500, error_rate=0.7))
        dropping = Behavior(tokens_per_second=100.0, drop_after_tokens=6)
        emu.enqueue(GPT, *[dropping] * MID_STREAM_DROPS)

        opened = asyncio.Event()

        def on_transition(transition: CircuitTransition) -> None:
            if transition.model == GPT and transition.to_state is CircuitState.OPEN:
                opened.set()

        rig.breakers.add_observer(on_transition)

        async def one(delay_s: float) -> tuple[str, ChainFinished, float]:
            await asyncio.sleep(delay_s)
            started = time.monotonic()
            events = await rig.stream(rig.plan(), deadline=started + 90.0)
            end = events[-1]
            assert isinstance(end, ChainFinished)
            resumed = sum(isinstance(e, ChainResumed) for e in events)
            assert resumed == len(end.resumed_at_chars)
            return text_of(events), end, time.monotonic() - started

        def batch(count: int) -> list[asyncio.Task[tuple[str, ChainFinished, float]]]:
            return [asyncio.create_task(one(i * SPREAD_S / count)) for i in range(count)]

        half = REQUESTS // 2
        started = time.monotonic()
        outage = await asyncio.gather(*batch(half))
        await asyncio.wait_for(opened.wait(), timeout=120)  # a guard, not a threshold
        await emu.wait_for_finished(len(emu.requests))
        outage_calls = [r for r in emu.requests if r.model == GPT]

        # The primary recovers; the cool-down ends on the breakers' clock; the first
        # call after it is the half-open probe, which closes the circuit again.
        emu.set_behavior(GPT, streaming)
        clock.advance(COOL_DOWN_S + 1)
        probe = await one(0)
        emu.enqueue(GPT, *[dropping] * MID_STREAM_DROPS)
        after = await asyncio.gather(*batch(REQUESTS - half - 1))
        await emu.wait_for_finished(len(emu.requests))
        elapsed = time.monotonic() - started

    results = [*outage, probe, *after]
    primary_calls = [r for r in emu.requests if r.model == GPT]
    primary_failed = [r for r in primary_calls if r.outcome != "ok"]
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
    # The open circuit spared the failing primary most of the outage's traffic: without it
    # every outage request would have tried the primary at least once.
    assert len(outage_calls) < half
    assert resumed, "no stream was resumed mid-answer"
    assert moves[0] == ("closed", "open")
    assert moves[-2:] == [("open", "half_open"), ("half_open", "closed")]
    assert rig.breakers.state("openai", GPT) is CircuitState.CLOSED
    # After the recovery the primary served: the circuit stayed closed through the drops.
    assert [r for r in primary_calls[len(outage_calls) :] if r.outcome == "ok"]
