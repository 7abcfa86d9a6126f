"""Fault suite: the real router, breakers, chain, providers and SDKs against the emulator.

Each test scripts one fault and asserts what the client would see. A resumed stream's text
must EQUAL an unfaulted stream's text for the same request: the emulator's answer depends
only on the conversation, and it continues a partial assistant message with exactly the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest
from modelrouter_server.attempts import NoCandidates, Outcome
from modelrouter_server.domain import Task, TextChunk
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import (
    DeadlineExceeded,
    InvalidProviderRequest,
    Overloaded,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamInterrupted,
)
from modelrouter_server.resilience import (
    ChainFinished,
    ChainResumed,
    ChainStarted,
    CircuitState,
)
from modelrouter_testsupport.fake_clock import FakeClock

from .emulated import CLAUDE, GPT, Rig, emulated_config, rig_for, text_of


async def reference_text(rig: Rig) -> str:
    """The unfaulted answer to the rig's conversation."""
    return text_of(await rig.stream(rig.plan(model=GPT)))


def finished(events: Sequence[object]) -> ChainFinished:
    last = events[-1]
    assert isinstance(last, ChainFinished)
    return last


# -- retries before any answer ------------------------------------------------------


async def test_429_retry_after_is_honoured(rig: Rig, emu: Emulator) -> None:
    emu.enqueue(GPT, Behavior(error_status=429, retry_after_s=0.4))
    result = await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
    assert result.candidate.model_id == GPT and not result.fallback
    # The retry loop chose to wait exactly the header's time, and really did (a lower bound:
    # load can lengthen a wait, never shorten it).
    assert rig.sleeps.waits == [pytest.approx(0.4)]
    first, second = await emu.wait_for_finished(2)
    assert second.started_at - first.started_at >= 0.4
    assert [a.outcome for a in result.attempts] == [Outcome.ERROR, Outcome.SUCCESS]
    assert result.attempts[0].error_class is RateLimited
    assert result.attempts[0].retry_after_s == pytest.approx(0.4, abs=0.05)


async def test_529_overloaded_is_retried(rig: Rig, emu: Emulator) -> None:
    emu.enqueue(CLAUDE, Behavior(error_status=529))
    result = await rig.chain.complete(rig.plan(model=CLAUDE), rig.build, deadline=rig.deadline())
    assert result.candidate.model_id == CLAUDE
    assert [a.error_class for a in result.attempts] == [Overloaded, None]


async def test_500_falls_back_after_the_retries(rig: Rig, emu: Emulator) -> None:
    emu.set_behavior(GPT, Behavior(error_status=500))
    result = await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
    assert result.candidate.model_id == CLAUDE and result.fallback
    assert [(a.model, a.error_class) for a in result.attempts] == [
        (GPT, ServerError),
        (GPT, ServerError),
        (CLAUDE, None),
    ]
    assert result.usage.output_tokens > 0 and result.cost_usd > 0


async def test_timeout_is_retried(emu: Emulator) -> None:
    config = emulated_config(providers={"openai": {"timeout_s": 0.2}})
    async with rig_for(emu, config) as rig:
        emu.enqueue(GPT, Behavior(latency_s=2.0))
        result = await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
    assert result.candidate.model_id == GPT
    assert [a.error_class for a in result.attempts] == [ProviderTimeout, None]


async def test_deadline_shorter_than_the_backoff_fails_fast(emu: Emulator) -> None:
    config = emulated_config(backoff_initial_s=5.0, backoff_max_s=5.0)
    async with rig_for(emu, config) as rig:
        emu.set_behavior("*", Behavior(error_status=503))
        with pytest.raises(DeadlineExceeded) as raised:
            await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline(1.0))
    # Neither model's 5 s backoff was slept, nor any part of it: both were given up at once.
    assert rig.sleeps.waits == []
    assert GPT in raised.value.message and CLAUDE in raised.value.message
    assert len(emu.requests) == 2


async def test_client_error_fails_fast_and_never_opens_the_circuit(rig: Rig, emu: Emulator) -> None:
    emu.set_behavior(GPT, Behavior(error_status=400))
    for _ in range(5):
        with pytest.raises(InvalidProviderRequest):
            await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
    assert rig.breakers.state("openai", GPT) is CircuitState.CLOSED
    assert {r.model for r in emu.requests} == {GPT}


async def test_all_candidates_rate_limited(rig: Rig, emu: Emulator) -> None:
    emu.set_behavior("*", Behavior(error_status=429, retry_after_s=30.0))
    with pytest.raises(NoCandidates) as raised:
        await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
    assert raised.value.all_rate_limited
    # A 30 s retry-after is past the policy's limit: no wait at all, not a shortened one.
    assert rig.sleeps.waits == []
    assert "rate limited" in raised.value.message and GPT in raised.value.message


# -- streams: before the first token -----------------------------------------------


async def test_slow_first_token_fails_over(emu: Emulator) -> None:
    async with rig_for(emu, emulated_config(ttft_timeout_s=0.2)) as rig:
        expected = await reference_text(rig)
        emu.set_behavior(GPT, Behavior(ttft_s=3.0))
        events = await rig.stream(rig.plan())
    assert text_of(events) == expected
    assert not any(isinstance(e, ChainResumed) for e in events)
    end = finished(events)
    assert end.candidate.model_id == CLAUDE and end.fallback
    assert end.attempts[0].error_class is ProviderTimeout
    # The slow upstream request was closed, not left running.
    (gone,) = await emu.wait_for_disconnect(1, timeout=1.0)
    assert gone.model == GPT


async def test_a_models_own_first_token_timeout_overrides_the_default(emu: Emulator) -> None:
    config = emulated_config(ttft_timeout_s=0.2)
    patient = config.models[GPT].model_copy(update={"ttft_timeout_s": 5.0})
    config = config.model_copy(update={"models": {**config.models, GPT: patient}})
    async with rig_for(emu, config) as rig:
        expected = await reference_text(rig)
        emu.set_behavior(GPT, Behavior(ttft_s=0.5))
        events = await rig.stream(rig.plan())
    assert text_of(events) == expected
    end = finished(events)
    assert end.candidate.model_id == GPT and not end.fallback


# -- streams: mid-stream resume -----------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Behavior(error_event_after_tokens=8), "error_event"),
        (Behavior(drop_after_tokens=8), "dropped"),
        (Behavior(truncate_after_tokens=8), "truncated"),
    ],
    ids=["error_event", "dropped_connection", "clean_truncation"],
)
async def test_mid_stream_break_resumes_on_the_next_model_with_identical_text(
    rig: Rig, emu: Emulator, fault: Behavior, kind: str
) -> None:
    expected = await reference_text(rig)
    emu.enqueue(GPT, fault)
    events = await rig.stream(rig.plan())
    assert text_of(events) == expected
    (resumed,) = [e for e in events if isinstance(e, ChainResumed)]
    assert resumed.candidate.model_id == CLAUDE
    assert kind in resumed.reason
    chunks_before = [e for e in events[: events.index(resumed)] if isinstance(e, TextChunk)]
    assert resumed.at_char == sum(len(c.text) for c in chunks_before) > 0
    end = finished(events)
    assert end.resumed_at_chars == (resumed.at_char,)
    assert [(a.model, a.outcome) for a in end.attempts] == [
        (GPT, Outcome.INTERRUPTED),
        (CLAUDE, Outcome.SUCCESS),
    ]
    assert end.attempts[0].error_class is StreamInterrupted


async def test_stall_past_the_inter_token_timeout_resumes(emu: Emulator) -> None:
    async with rig_for(emu, emulated_config(inter_token_timeout_s=0.2)) as rig:
        expected = await reference_text(rig)
        emu.enqueue(GPT, Behavior(stall_after_tokens=6, stall_s=5.0))
        events = await rig.stream(rig.plan())
    assert text_of(events) == expected
    (resumed,) = [e for e in events if isinstance(e, ChainResumed)]
    assert "stalled" in resumed.reason
    await emu.wait_for_disconnect(1, timeout=1.0)


async def test_unsafe_continuation_is_an_error_not_a_clean_finish(emu: Emulator) -> None:
    config = emulated_config()
    models = dict(config.models)
    claude = models[CLAUDE]
    models[CLAUDE] = claude.model_copy(
        update={"capabilities": claude.capabilities.model_copy(update={"continuation": False})}
    )
    async with rig_for(emu, config.model_copy(update={"models": models})) as rig:
        emu.set_behavior(GPT, Behavior(drop_after_tokens=8))
        events: list[object] = []
        with pytest.raises(NoCandidates) as raised:
            async for event in rig.chain.stream(rig.plan(), rig.build, deadline=rig.deadline()):
                events.append(event)
    assert any(isinstance(e, TextChunk) for e in events)
    assert not any(isinstance(e, ChainFinished) for e in events)
    assert "could not be continued" in raised.value.message
    assert f"{CLAUDE}: cannot continue a partial answer" in raised.value.message


async def test_break_during_thinking_is_an_error_not_a_clean_finish(
    rig: Rig, emu: Emulator
) -> None:
    emu.enqueue(CLAUDE, Behavior(thinking_tokens=12, error_event_after_tokens=0))
    plan = rig.plan(model=CLAUDE, task=Task.REASONING)
    assert plan.candidates[0].thinking_budget_tokens
    events: list[object] = []
    with pytest.raises(NoCandidates) as raised:
        async for event in rig.chain.stream(plan, rig.build, deadline=rig.deadline()):
            events.append(event)
    assert not any(isinstance(e, TextChunk | ChainFinished) for e in events)
    assert "thinking cannot be continued" in raised.value.message
    assert len(emu.requests) == 1


# -- breakers -----------------------------------------------------------------------


async def test_breaker_opens_then_half_open_lets_one_probe_then_closes(
    emu: Emulator,
) -> None:
    # A 30 s cool-down, ended by moving the breakers' clock: the test never waits it out.
    config = emulated_config(
        max_attempts_per_model=1, breaker_fail_max=2, breaker_reset_timeout_s=30.0
    )
    clock = FakeClock()
    async with rig_for(emu, config, breaker_clock=clock) as rig:
        emu.set_behavior(GPT, Behavior(error_status=500))
        for _ in range(2):
            await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
        assert rig.breakers.state("openai", GPT) is CircuitState.OPEN

        # Open: the router skips the model without calling it.
        plan = rig.plan()
        assert [c.model_id for c in plan.candidates] == [CLAUDE]
        assert plan.skipped[0].outcome is Outcome.SKIPPED_CIRCUIT_OPEN
        calls_to_gpt = sum(r.model == GPT for r in emu.requests)

        # Cool-down over and the model healthy again, but slow: of five concurrent
        # requests exactly one probes it; the others go straight to the fallback.
        clock.advance(config.resilience.breaker_reset_timeout_s)
        emu.set_behavior(GPT, Behavior(latency_s=0.2))
        plans = [rig.plan() for _ in range(5)]
        assert all(p.candidates[0].model_id == GPT for p in plans)
        results = await asyncio.gather(
            *(rig.chain.complete(p, rig.build, deadline=rig.deadline()) for p in plans)
        )
        served = sorted(r.candidate.model_id for r in results)
        assert served == sorted([GPT] + [CLAUDE] * 4)
        assert sum(r.model == GPT for r in emu.requests) == calls_to_gpt + 1
        skipped = [r for r in results if r.candidate.model_id == CLAUDE]
        assert all(r.attempts[0].outcome is Outcome.SKIPPED_CIRCUIT_OPEN for r in skipped)

        assert rig.breakers.state("openai", GPT) is CircuitState.CLOSED
        assert rig.moves(GPT) == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]


async def test_failed_probe_reopens_the_circuit(emu: Emulator) -> None:
    config = emulated_config(
        max_attempts_per_model=1, breaker_fail_max=1, breaker_reset_timeout_s=30.0
    )
    clock = FakeClock()
    async with rig_for(emu, config, breaker_clock=clock) as rig:
        emu.set_behavior(GPT, Behavior(error_status=529))
        await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
        assert rig.plan().candidates[0].model_id == CLAUDE  # open: cooling down
        clock.advance(config.resilience.breaker_reset_timeout_s)
        result = await rig.chain.complete(rig.plan(), rig.build, deadline=rig.deadline())
        assert result.candidate.model_id == CLAUDE
        assert rig.moves(GPT) == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]


# -- cancellation -------------------------------------------------------------------


async def test_client_cancel_mid_stream_closes_upstream(rig: Rig, emu: Emulator) -> None:
    emu.set_behavior(GPT, Behavior(output_tokens=4000, tokens_per_second=40.0))
    got_text = asyncio.Event()

    async def consume() -> None:
        async for event in rig.chain.stream(rig.plan(), rig.build, deadline=rig.deadline()):
            if isinstance(event, TextChunk):
                got_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_text.wait(), timeout=30.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The answer lasts 100 s: within the wait, only a closed connection ends it.
    (gone,) = await emu.wait_for_disconnect(1)
    assert gone.model == GPT
    # Nothing leaked: the breaker holds no slot and the circuit did not count a failure.
    assert rig.breakers.state("openai", GPT) is CircuitState.CLOSED
    assert rig.breakers.allows("openai", GPT)


async def test_consumer_closing_the_stream_closes_upstream(rig: Rig, emu: Emulator) -> None:
    emu.set_behavior(CLAUDE, Behavior(output_tokens=4000, tokens_per_second=40.0))
    stream = rig.chain.stream(rig.plan(model=CLAUDE), rig.build, deadline=rig.deadline())
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, ChainStarted):
                continue
            break
    # The answer lasts 100 s: within the wait, only a closed connection ends it.
    (gone,) = await emu.wait_for_disconnect(1)
    assert gone.model == CLAUDE
