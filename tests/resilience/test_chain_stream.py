"""The streaming chain over a scripted provider: transparent failover, resume, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from modelrouter_server.attempts import NoCandidates, Outcome
from modelrouter_server.candidates import RoutePlan
from modelrouter_server.domain import Role, TextChunk, ThinkingChunk
from modelrouter_server.errors import (
    DeadlineExceeded,
    InterruptionKind,
    InvalidProviderRequest,
    ServerError,
    StreamInterrupted,
)
from modelrouter_server.resilience import (
    BreakerRegistry,
    ChainEvent,
    ChainFinished,
    ChainResumed,
    ChainStarted,
    CircuitState,
    Clock,
    FallbackChain,
    Sleep,
)
from modelrouter_testsupport.fake_clock import FakeClock

from .fakes import ANSWER, Reply, ScriptedProvider, build_request, make_config, plan_of

BROKEN = StreamInterrupted("overloaded_error event", kind=InterruptionKind.ERROR_EVENT)


class Harness:
    """A chain over one scripted provider, on a fake clock unless `fake_time` is False
    (the timeout tests need real time: their timeouts are `asyncio.timeout`s)."""

    def __init__(self, *, fake_time: bool = True, **resilience: float) -> None:
        self.config = make_config(**resilience)
        self.provider = ScriptedProvider()
        self.clock = FakeClock()
        clock: Clock = self.clock if fake_time else time.monotonic
        sleep: Sleep = self.clock.sleep if fake_time else asyncio.sleep
        self.breakers = BreakerRegistry.from_config(self.config.resilience, clock=clock)
        self.chain = FallbackChain(
            {"alpha": self.provider},
            self.breakers,
            self.config.resilience,
            clock=clock,
            sleep=sleep,
        )

    def plan(self, *models: str) -> RoutePlan:
        return plan_of(self.config, *models)

    async def collect(self, plan: RoutePlan, deadline: float | None = None) -> list[ChainEvent]:
        return [e async for e in self.chain.stream(plan, build_request, deadline=deadline)]


def text_of(events: list[ChainEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


def finished(events: list[ChainEvent]) -> ChainFinished:
    last = events[-1]
    assert isinstance(last, ChainFinished)
    return last


async def test_a_healthy_stream_starts_streams_and_finishes() -> None:
    h = Harness()
    events = await h.collect(h.plan("small", "big"))
    assert isinstance(events[0], ChainStarted) and events[0].candidate.model_id == "small"
    assert text_of(events) == ANSWER
    end = finished(events)
    assert end.candidate.model_id == "small" and not end.fallback
    assert end.resumed_at_chars == ()
    assert [a.outcome for a in end.attempts] == [Outcome.SUCCESS]
    assert h.provider.open_streams == 0


async def test_failure_before_the_first_token_is_transparent() -> None:
    h = Harness(max_attempts_per_model=1)
    h.provider.script("small", Reply(error=ServerError("boom", status_code=500)))
    events = await h.collect(h.plan("small", "big"))
    assert not any(isinstance(e, ChainResumed) for e in events)
    assert isinstance(events[0], ChainStarted) and events[0].candidate.model_id == "big"
    assert text_of(events) == ANSWER
    assert finished(events).fallback


async def test_mid_stream_break_resumes_on_the_next_model_with_identical_text() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=4, mid_error=BROKEN))
    events = await h.collect(h.plan("small", "big"))
    assert text_of(events) == ANSWER
    (resumed,) = [e for e in events if isinstance(e, ChainResumed)]
    prefix = "".join(w + " " for w in ANSWER.split(" ")[:4])
    assert resumed.at_char == len(prefix)
    assert resumed.candidate.model_id == "big"
    assert "small stream interrupted (error_event)" in resumed.reason
    # The resumed request carries the text so far as a trailing assistant message.
    resume_request = h.provider.requests[-1]
    assert resume_request.messages[-1].role is Role.ASSISTANT
    assert resume_request.messages[-1].content == prefix
    end = finished(events)
    assert end.resumed_at_chars == (len(prefix),)
    assert [(a.model, a.outcome) for a in end.attempts] == [
        ("small", Outcome.INTERRUPTED),
        ("big", Outcome.SUCCESS),
    ]
    assert end.attempts[0].error_class is StreamInterrupted
    assert h.provider.open_streams == 0


async def test_resume_runs_without_extended_thinking() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=2, mid_error=BROKEN))
    plan = h.plan("small", "thinker")
    thinker = plan.candidates[1]
    plan = RoutePlan(
        candidates=(
            plan.candidates[0],
            type(thinker)(
                model_id=thinker.model_id,
                provider=thinker.provider,
                config=thinker.config,
                max_output_tokens=4000,
                thinking_budget_tokens=2048,
            ),
        )
    )
    events = await h.collect(plan)
    assert text_of(events) == ANSWER
    assert h.provider.requests[-1].thinking_budget_tokens is None


async def test_the_last_model_resumes_itself() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=3, mid_error=BROKEN))
    events = await h.collect(h.plan("small"))
    assert text_of(events) == ANSWER
    (resumed,) = [e for e in events if isinstance(e, ChainResumed)]
    assert resumed.candidate.model_id == "small"
    assert not finished(events).fallback


async def test_the_last_model_stops_resuming_itself_at_max_attempts() -> None:
    h = Harness(max_attempts_per_model=2)
    h.provider.script("small", *[Reply(fail_after_chunks=1, mid_error=BROKEN)] * 3)
    events: list[ChainEvent] = []
    with pytest.raises(NoCandidates) as raised:
        async for event in h.chain.stream(h.plan("small"), build_request, deadline=None):
            events.append(event)
    assert not any(isinstance(e, ChainFinished) for e in events)
    assert "could not be continued" in raised.value.message
    assert len(h.provider.requests) == 2


async def test_resume_skips_models_that_cannot_continue() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=2, mid_error=BROKEN))
    events = await h.collect(h.plan("small", "stubborn", "big"))
    assert text_of(events) == ANSWER
    end = finished(events)
    assert [(a.model, a.outcome) for a in end.attempts] == [
        ("small", Outcome.INTERRUPTED),
        ("stubborn", Outcome.SKIPPED_CAPABILITY),
        ("big", Outcome.SUCCESS),
    ]


async def test_resume_errors_when_no_model_can_continue() -> None:
    h = Harness(max_attempts_per_model=1)
    h.provider.script("small", Reply(fail_after_chunks=2, mid_error=BROKEN))
    events: list[ChainEvent] = []
    with pytest.raises(NoCandidates) as raised:
        async for event in h.chain.stream(
            h.plan("small", "stubborn"), build_request, deadline=None
        ):
            events.append(event)
    # The client saw a partial answer and then an error: never a clean finish.
    assert text_of(events) and text_of(events) != ANSWER
    assert not any(isinstance(e, ChainFinished) for e in events)
    assert "stubborn: cannot continue a partial answer" in raised.value.message
    outcomes = [(a.model, a.outcome) for a in raised.value.attempts]
    assert ("stubborn", Outcome.SKIPPED_CAPABILITY) in outcomes


async def test_break_during_thinking_is_an_error_not_a_restart() -> None:
    h = Harness()
    h.provider.script(
        "small",
        Reply(thinking=("Let me think", " step by step"), fail_after_chunks=0, mid_error=BROKEN),
    )
    events: list[ChainEvent] = []
    with pytest.raises(NoCandidates) as raised:
        async for event in h.chain.stream(h.plan("small", "big"), build_request, deadline=None):
            events.append(event)
    assert [type(e) for e in events] == [ChainStarted, ThinkingChunk, ThinkingChunk]
    assert "thinking cannot be continued" in raised.value.message
    assert [r.model for r in h.provider.requests] == ["small"]


async def test_invalid_request_before_any_text_fails_fast() -> None:
    h = Harness()
    h.provider.script("small", Reply(error=InvalidProviderRequest("bad", status_code=400)))
    with pytest.raises(InvalidProviderRequest):
        await h.collect(h.plan("small", "big"))


async def test_rejected_resume_request_moves_on_instead_of_failing() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=2, mid_error=BROKEN))
    h.provider.script("big", Reply(error=InvalidProviderRequest("no prefill", status_code=400)))
    events = await h.collect(h.plan("small", "big", "thinker"))
    assert text_of(events) == ANSWER
    assert finished(events).candidate.model_id == "thinker"


async def test_stall_past_inter_token_timeout_resumes() -> None:
    h = Harness(fake_time=False, inter_token_timeout_s=0.05)
    h.provider.script("small", Reply(stall_after_chunks=3, stall_s=30.0))
    events = await h.collect(h.plan("small", "big"))
    assert text_of(events) == ANSWER
    (resumed,) = [e for e in events if isinstance(e, ChainResumed)]
    assert "stalled" in resumed.reason
    assert finished(events).attempts[0].error_class is StreamInterrupted
    assert h.provider.open_streams == 0


async def test_slow_first_token_fails_over_without_retrying_the_slow_model() -> None:
    h = Harness(fake_time=False, ttft_timeout_s=0.05)
    h.provider.script("small", Reply(delay_s=30.0), Reply(delay_s=30.0))
    events = await h.collect(h.plan("small", "big"))
    assert text_of(events) == ANSWER
    assert not any(isinstance(e, ChainResumed) for e in events)
    assert [r.model for r in h.provider.requests] == ["small", "big"]
    assert h.provider.open_streams == 0


async def test_deadline_mid_stream_is_deadline_exceeded() -> None:
    h = Harness(fake_time=False)
    h.provider.script("small", Reply(stall_after_chunks=2, stall_s=30.0))
    with pytest.raises(DeadlineExceeded):
        await h.collect(h.plan("small", "big"), deadline=time.monotonic() + 0.1)
    assert h.provider.open_streams == 0
    assert len(h.provider.requests) == 1


async def test_consumer_closing_the_stream_closes_upstream() -> None:
    h = Harness()
    stream = h.chain.stream(h.plan("small"), build_request, deadline=None)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, TextChunk):
                assert h.provider.open_streams == 1
                break
    assert h.provider.open_streams == 0
    # Leaving early is not the endpoint's fault: nothing was counted against it.
    assert h.breakers.state("alpha", "small") is CircuitState.CLOSED


async def test_probe_stream_closes_the_circuit_at_its_first_token() -> None:
    h = Harness(breaker_fail_max=1)
    with h.breakers.acquire("alpha", "small") as permit:
        permit.failure(ServerError("down", status_code=500))
    h.clock.advance(10.0)
    stream = h.chain.stream(h.plan("small"), build_request, deadline=None)
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, TextChunk):
                break
    assert h.breakers.state("alpha", "small") is CircuitState.CLOSED


async def test_probe_cancelled_before_its_first_token_frees_the_gate() -> None:
    h = Harness(breaker_fail_max=1)
    with h.breakers.acquire("alpha", "small") as permit:
        permit.failure(ServerError("down", status_code=500))
    h.clock.advance(10.0)
    h.provider.script("small", Reply(delay_s=30.0))

    async def consume() -> None:
        async for _ in h.chain.stream(h.plan("small"), build_request, deadline=None):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(h.provider.paused.wait(), timeout=30.0)
    assert h.provider.open_streams == 1
    assert not h.breakers.allows("alpha", "small")  # the probe holds the gate
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.provider.open_streams == 0
    assert h.breakers.state("alpha", "small") is CircuitState.HALF_OPEN
    assert h.breakers.allows("alpha", "small")


async def test_cancelling_the_consumer_closes_upstream_and_propagates() -> None:
    h = Harness(fake_time=False)
    h.provider.script("small", Reply(stall_after_chunks=2, stall_s=30.0))
    got_text = asyncio.Event()

    async def consume() -> None:
        async for event in h.chain.stream(h.plan("small"), build_request, deadline=None):
            if isinstance(event, TextChunk):
                got_text.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(h.provider.paused.wait(), timeout=30.0)
    assert got_text.is_set()
    assert h.provider.open_streams == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.provider.open_streams == 0
    assert h.breakers.allows("alpha", "small")


async def test_broken_model_resumes_itself_when_the_rest_cannot_continue() -> None:
    h = Harness()
    h.provider.script("small", Reply(fail_after_chunks=2, mid_error=BROKEN))
    events = await h.collect(h.plan("small", "stubborn"))
    assert text_of(events) == ANSWER
    assert finished(events).candidate.model_id == "small"
