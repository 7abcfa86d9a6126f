"""Resilience as a gRPC client sees it: resumed streams, cancellation that reaches the
provider, deadlines, and the status when every candidate fails."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_testsupport.fake_clock import FakeClock

from .conftest import TEST_OVERRIDES, StartRouter
from .status_details import details_of

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"


async def _collect(
    client: AsyncModelRouterClient, prompt: str, **options: object
) -> tuple[str, list[pb.GenerateStreamResponse]]:
    events = [e async for e in client.stream(prompt, **options)]  # type: ignore[arg-type]
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta"), events


@pytest.mark.parametrize(
    "fault",
    [
        Behavior(error_event_after_tokens=5, output_tokens=40),
        Behavior(drop_after_tokens=5, output_tokens=40),
        Behavior(truncate_after_tokens=5, output_tokens=40),
        Behavior(stall_after_tokens=5, output_tokens=40, stall_s=30),
    ],
    ids=["error-event", "dropped-connection", "clean-truncation", "stall"],
)
async def test_mid_stream_failure_resumes_on_the_next_model_with_no_gap_or_repeat(
    router: AsyncModelRouterClient, emulator: Emulator, fault: Behavior
) -> None:
    emulator.set_behavior("*", Behavior(output_tokens=40))
    clean, _ = await _collect(router, "Write a poem.", task=pb.TASK_CHAT)
    emulator.enqueue(GPT, fault)
    text, events = await _collect(router, "Write a poem.", task=pb.TASK_CHAT)
    assert text == clean
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("resume") == 1
    resume = next(e.resume for e in events if e.WhichOneof("event") == "resume")
    assert resume.model == CLAUDE
    finish = events[-1].finish
    assert finish.resumed and finish.model == CLAUDE
    assert list(finish.resumed_at_chars) == [resume.resumed_at_char]
    assert 0 < resume.resumed_at_char < len(clean)
    assert [a.outcome for a in finish.attempts] == [
        pb.ATTEMPT_OUTCOME_INTERRUPTED,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]


async def test_client_cancel_mid_stream_closes_the_upstream_request(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    # 200 s of answer: within the wait, only a closed upstream connection ends it.
    emulator.set_behavior(GPT, Behavior(tokens_per_second=50, output_tokens=10_000))
    deltas = 0
    async for event in router.stream("Go on forever.", model="gpt-4o-mini"):
        if event.WhichOneof("event") == "delta":
            deltas += 1
            if deltas == 5:
                break  # leaving the loop cancels the RPC
    (disconnect,) = await emulator.wait_for_disconnect(1)
    assert disconnect.model == GPT
    assert disconnect.tokens_sent >= 5


async def test_deadline_passing_mid_stream_closes_upstream_and_reports_deadline(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    # 500 s of answer: within the wait, only a closed upstream connection ends it.
    emulator.set_behavior("*", Behavior(tokens_per_second=20, output_tokens=10_000))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in router.stream("Slow.", model="gpt-4o-mini", timeout=0.5):
            pass
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    (disconnect,) = await emulator.wait_for_disconnect(1)
    assert disconnect.model == GPT


async def test_unary_cancel_closes_the_upstream_request(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(latency_s=3600))
    task = asyncio.create_task(router.generate("Slow.", model="gpt-4o-mini"))
    [arrived] = await emulator.wait_for_request()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The answer is an hour away: within the wait, only a closed connection ends it.
    (disconnect,) = await emulator.wait_for_disconnect(1)
    assert disconnect.request_id == arrived.id


async def test_all_candidates_rate_limited_is_resource_exhausted_with_every_attempt(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    # Longer than the client's 30 s deadline: waiting cannot help, so the router answers
    # at once. (At exactly 30 s the outcome hung on which side saw the deadline first.)
    emulator.set_behavior("*", Behavior(error_status=429, retry_after_s=45))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.generate("hi", task=pb.TASK_CHAT)
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limited" in (error.details() or "")
    infos = details_of(error, error_details_pb2.ErrorInfo)
    retries = details_of(error, error_details_pb2.RetryInfo)
    (info,) = infos
    assert info.reason == "NO_CANDIDATES"
    attempts = " ".join(info.metadata.values())
    assert GPT in attempts and CLAUDE in attempts
    (retry,) = retries
    assert retry.retry_delay.seconds == 45


async def test_429_with_retry_after_is_retried_on_the_same_model_after_the_wait(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    emulator.enqueue(GPT, Behavior(error_status=429, retry_after_s=0.3))
    reply = await router.generate("hi", model="gpt-4o-mini")
    limited, retried = await emulator.wait_for_finished(2)
    # A lower bound only: load can lengthen the wait, never shorten it.
    assert limited.ended_at is not None and retried.started_at - limited.ended_at >= 0.3
    assert reply.model == GPT and not reply.fallback
    assert [a.outcome for a in reply.attempts] == [
        pb.ATTEMPT_OUTCOME_ERROR,
        pb.ATTEMPT_OUTCOME_SUCCESS,
    ]
    assert reply.attempts[0].grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


async def test_open_circuit_shows_in_list_models_and_is_skipped_then_recovers(
    start_router: StartRouter, emulator: Emulator
) -> None:
    clock = FakeClock()
    router = await start_router(breaker_clock=clock)
    emulator.set_behavior(GPT, Behavior(error_status=529))
    for _ in range(2):  # breaker_fail_max=3 failures, 2 tries per request
        reply = await router.generate("hi", task=pb.TASK_CHAT)
        assert reply.model == CLAUDE and reply.fallback
    states = {m.id: m.circuit_state for m in await router.list_models()}
    assert states[GPT] == pb.CIRCUIT_STATE_OPEN
    reply = await router.generate("hi", task=pb.TASK_CHAT)
    assert reply.attempts[0].outcome == pb.ATTEMPT_OUTCOME_SKIPPED_CIRCUIT_OPEN
    emulator.set_behavior(GPT, Behavior())
    clock.advance(TEST_OVERRIDES["resilience"]["breaker_reset_timeout_s"])  # no real wait
    reply = await router.generate("hi", task=pb.TASK_CHAT)
    assert reply.model == GPT and not reply.fallback
    states = {m.id: m.circuit_state for m in await router.list_models()}
    assert states[GPT] == pb.CIRCUIT_STATE_CLOSED
