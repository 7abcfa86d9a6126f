"""The unary fallback chain over a scripted provider and a fake clock."""

from __future__ import annotations

import pytest
from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome
from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.domain import ProviderRequest, Usage
from modelrouter_server.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    DeadlineExceeded,
    InvalidProviderRequest,
    Overloaded,
    ProviderError,
    RateLimited,
    ServerError,
    UpstreamModelNotFound,
)
from modelrouter_server.resilience import BreakerRegistry, CircuitState, FallbackChain
from modelrouter_testsupport.fake_clock import FakeClock
from structlog.testing import capture_logs

from .fakes import ANSWER, USER, Reply, ScriptedProvider, make_config, plan_of


class Harness:
    def __init__(self, **resilience: float) -> None:
        self.config = make_config(**resilience)
        self.clock = FakeClock()
        self.provider = ScriptedProvider()
        self.breakers = BreakerRegistry.from_config(self.config.resilience, clock=self.clock)
        self.chain = FallbackChain(
            {"alpha": self.provider},
            self.breakers,
            self.config.resilience,
            clock=self.clock,
            sleep=self.clock.sleep,
        )


async def build(c: Candidate, timeout_s: float | None) -> ProviderRequest:
    return c.request(USER, timeout_s=timeout_s, request_id="req-1")


def outcomes(attempts: tuple[AttemptRecord, ...]) -> list[tuple[str, Outcome]]:
    return [(a.model, a.outcome) for a in attempts]


async def test_first_candidate_answers() -> None:
    h = Harness()
    result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert result.completion.text == ANSWER
    assert result.candidate.model_id == "small"
    assert not result.fallback
    assert outcomes(result.attempts) == [("small", Outcome.SUCCESS)]
    assert result.usage == Usage(input_tokens=100, output_tokens=20)
    # "small": 100 x $1 + 20 x $2 per million tokens.
    assert result.cost_usd == pytest.approx(0.000_14)


async def test_server_error_is_retried_on_the_same_model() -> None:
    h = Harness()
    h.provider.script("small", Reply(error=ServerError("boom", status_code=500)))
    with capture_logs() as logs:
        result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert result.candidate.model_id == "small" and not result.fallback
    assert outcomes(result.attempts) == [("small", Outcome.ERROR), ("small", Outcome.SUCCESS)]
    assert result.attempts[0].error_class is ServerError
    assert h.clock.sleeps == [0.1]
    retry = next(e for e in logs if e["event"] == "retrying")
    assert retry["request_id"] == "req-1" and retry["model"] == "small" and retry["attempt"] == 1


async def test_retry_after_is_waited_and_recorded() -> None:
    h = Harness()
    h.provider.script("small", Reply(error=RateLimited("slow", status_code=429, retry_after_s=2.5)))
    result = await h.chain.complete(plan_of(h.config, "small"), build, deadline=None)
    assert h.clock.sleeps == [2.5]
    assert result.attempts[0].retry_after_s == 2.5


async def test_exhausted_retries_fall_back_to_the_next_candidate() -> None:
    h = Harness(max_attempts_per_model=2)
    h.provider.script("small", *[Reply(error=Overloaded("busy", status_code=529))] * 2)
    result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert result.candidate.model_id == "big" and result.fallback
    assert outcomes(result.attempts) == [
        ("small", Outcome.ERROR),
        ("small", Outcome.ERROR),
        ("big", Outcome.SUCCESS),
    ]
    # Only the answered call reported usage: that is what is billed.
    # "big": 100 x $10 + 20 x $20 per million tokens.
    assert result.usage == Usage(input_tokens=100, output_tokens=20)
    assert result.cost_usd == pytest.approx(0.001_4)


async def test_a_400_fails_fast_without_fallback() -> None:
    h = Harness()
    error = InvalidProviderRequest("bad field", status_code=400)
    h.provider.script("small", Reply(error=error))
    with pytest.raises(InvalidProviderRequest) as raised:
        await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert raised.value is error
    assert [r.model for r in h.provider.requests] == ["small"]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationFailed("bad key", status_code=401),
        UpstreamModelNotFound("no", status_code=404),
    ],
    ids=["401", "404"],
)
async def test_config_errors_fall_back_without_retry_or_breaker_count(
    error: ProviderError,
) -> None:
    h = Harness(breaker_fail_max=1)
    h.provider.script("small", Reply(error=error))
    result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert result.candidate.model_id == "big"
    assert h.clock.sleeps == []
    assert h.breakers.state("alpha", "small") is CircuitState.CLOSED


async def test_context_overflow_moves_to_a_larger_window_only() -> None:
    h = Harness()
    h.provider.script("big", Reply(error=ContextWindowExceeded("too long", status_code=400)))
    plan = plan_of(h.config, "big", "small", "thinker")
    result = await h.chain.complete(plan, build, deadline=None)
    assert result.candidate.model_id == "thinker"
    assert outcomes(result.attempts) == [
        ("big", Outcome.ERROR),
        ("small", Outcome.SKIPPED_CONTEXT_WINDOW),
        ("thinker", Outcome.SUCCESS),
    ]


async def test_builder_overflow_skips_the_candidate() -> None:
    h = Harness()

    async def fitting(c: Candidate, timeout_s: float | None) -> ProviderRequest:
        if c.config.context_window < 5000:
            raise ContextWindowExceeded("pinned history alone is 6000 tokens")
        return await build(c, timeout_s)

    result = await h.chain.complete(plan_of(h.config, "small", "big"), fitting, deadline=None)
    assert result.candidate.model_id == "big"
    assert outcomes(result.attempts) == [
        ("small", Outcome.SKIPPED_CONTEXT_WINDOW),
        ("big", Outcome.SUCCESS),
    ]
    assert [r.model for r in h.provider.requests] == ["big"]


async def test_all_failed_names_each_model_and_why() -> None:
    h = Harness(max_attempts_per_model=1)
    h.provider.script("small", Reply(error=RateLimited("slow", status_code=429, retry_after_s=2.0)))
    h.provider.script("big", Reply(error=ServerError("boom", status_code=500)))
    with pytest.raises(NoCandidates) as raised:
        await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    message = raised.value.message
    assert message.startswith("all 2 candidates failed: ")
    assert "small: rate limited (HTTP 429) (retry after 2.0s)" in message
    assert "big: server error (HTTP 500)" in message
    assert not raised.value.all_rate_limited
    assert [a.outcome for a in raised.value.attempts] == [Outcome.ERROR, Outcome.ERROR]


async def test_all_rate_limited_is_flagged() -> None:
    h = Harness()
    too_long = Reply(error=RateLimited("later", status_code=429, retry_after_s=60.0))
    h.provider.script("small", too_long)
    h.provider.script("big", too_long)
    with pytest.raises(NoCandidates) as raised:
        await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert raised.value.all_rate_limited
    assert "retry-after above max_retry_after_s" in raised.value.message
    assert h.clock.sleeps == []


async def test_deadline_shorter_than_the_backoff_fails_fast() -> None:
    h = Harness(backoff_initial_s=5.0)
    h.provider.script("small", Reply(error=ServerError("boom", status_code=500)))
    h.provider.script("big", Reply(error=ServerError("boom", status_code=500)))
    start = h.clock()
    with pytest.raises(DeadlineExceeded) as raised:
        await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=start + 1.0)
    assert h.clock.sleeps == []
    assert "small" in raised.value.message and "big" in raised.value.message


async def test_passed_deadline_skips_the_remaining_candidates() -> None:
    h = Harness(max_attempts_per_model=1)

    async def slow_build(c: Candidate, timeout_s: float | None) -> ProviderRequest:
        h.clock.advance(2.0)
        return await build(c, timeout_s)

    h.provider.script("small", Reply(error=ServerError("boom", status_code=500)))
    with pytest.raises(DeadlineExceeded):
        await h.chain.complete(
            plan_of(h.config, "small", "big"), slow_build, deadline=h.clock() + 3.0
        )
    assert [r.model for r in h.provider.requests] == ["small"]


async def test_each_call_gets_the_time_left() -> None:
    h = Harness()
    h.provider.script("small", Reply(error=ServerError("boom", status_code=500)))
    await h.chain.complete(plan_of(h.config, "small"), build, deadline=h.clock() + 10.0)
    assert [r.timeout_s for r in h.provider.requests] == pytest.approx([10.0, 9.9])


async def test_open_circuit_is_skipped_at_call_time() -> None:
    h = Harness(breaker_fail_max=2, max_attempts_per_model=5)
    h.provider.script("small", *[Reply(error=ServerError("boom", status_code=500))] * 5)
    result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    # Two failures trip the breaker; the third try is refused and the chain moves on.
    assert outcomes(result.attempts) == [
        ("small", Outcome.ERROR),
        ("small", Outcome.ERROR),
        ("small", Outcome.SKIPPED_CIRCUIT_OPEN),
        ("big", Outcome.SUCCESS),
    ]
    result = await h.chain.complete(plan_of(h.config, "small", "big"), build, deadline=None)
    assert outcomes(result.attempts) == [
        ("small", Outcome.SKIPPED_CIRCUIT_OPEN),
        ("big", Outcome.SUCCESS),
    ]


async def test_plan_skips_lead_the_attempts() -> None:
    h = Harness()
    skip = AttemptRecord(
        model="small", provider="alpha", outcome=Outcome.SKIPPED_COST, error="too dear"
    )
    plan = RoutePlan(candidates=plan_of(h.config, "big").candidates, skipped=(skip,))
    result = await h.chain.complete(plan, build, deadline=None)
    assert outcomes(result.attempts) == [("small", Outcome.SKIPPED_COST), ("big", Outcome.SUCCESS)]
    assert result.fallback is False


async def test_empty_plan_is_no_candidates() -> None:
    h = Harness()
    with pytest.raises(NoCandidates):
        await h.chain.complete(plan_of(h.config), build, deadline=None)
