"""The retry policy and loop, on a fake clock: which failures retry, how long, when to stop."""

from __future__ import annotations

import asyncio
import random

import pytest
from modelrouter_server.config.schema import ResilienceConfig
from modelrouter_server.errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    InvalidProviderRequest,
    Overloaded,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from modelrouter_server.resilience import RetryPolicy, RetryStopped, StopReason, call_with_retries
from modelrouter_testsupport.fake_clock import FakeClock


def policy(**overrides: float) -> RetryPolicy:
    values: dict[str, float] = {
        "max_attempts_per_model": 4,
        "backoff_initial_s": 0.25,
        "backoff_max_s": 2.0,
        "backoff_jitter": 0.0,
        "max_retry_after_s": 30.0,
    }
    values.update(overrides)
    return RetryPolicy(ResilienceConfig.model_validate(values), rng=random.Random(7))


class Failing:
    """An attempt that fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.timeouts: list[float | None] = []

    async def __call__(self, tries: int, timeout_s: float | None) -> str:
        self.timeouts.append(timeout_s)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def run(
    attempt: Failing, clock: FakeClock, p: RetryPolicy, deadline: float | None = None
) -> str:
    return await call_with_retries(
        attempt, policy=p, deadline=deadline, clock=clock, sleep=clock.sleep
    )


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    p = policy()
    assert [p.backoff_s(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_full_jitter_draws_between_zero_and_the_exponential_delay() -> None:
    p = policy(backoff_jitter=1.0)
    draws = [p.backoff_s(3) for _ in range(500)]
    assert all(0.0 <= d <= 1.0 for d in draws)
    assert min(draws) < 0.1 and max(draws) > 0.9


def test_partial_jitter_keeps_a_floor() -> None:
    p = policy(backoff_jitter=0.5)
    draws = [p.backoff_s(2) for _ in range(500)]
    assert all(0.25 <= d <= 0.5 for d in draws)


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down"),
        Overloaded("overloaded", status_code=529),
        ServerError("boom", status_code=500),
        ProviderTimeout("timed out"),
        ProviderConnectionError("reset"),
    ],
    ids=["429", "529", "500", "timeout", "connection"],
)
async def test_health_failures_are_retried_with_backoff(error: ProviderError) -> None:
    clock = FakeClock()
    attempt = Failing(error, error)
    assert await run(attempt, clock, policy()) == "ok"
    assert clock.sleeps == [0.25, 0.5]


@pytest.mark.parametrize(
    "error",
    [
        InvalidProviderRequest("bad", status_code=400),
        AuthenticationFailed("who are you", status_code=401),
        RateLimited("pay up", quota_exhausted=True, status_code=429),
    ],
    ids=["400", "401", "quota"],
)
async def test_request_and_quota_errors_are_not_retried(error: ProviderError) -> None:
    clock = FakeClock()
    with pytest.raises(RetryStopped) as stopped:
        await run(Failing(error), clock, policy())
    assert stopped.value.reason is StopReason.NOT_RETRYABLE
    assert stopped.value.error is error
    assert stopped.value.tries == 1
    assert clock.sleeps == []


async def test_retry_after_is_honoured_exactly_instead_of_backoff() -> None:
    clock = FakeClock()
    attempt = Failing(RateLimited("slow down", retry_after_s=7.5))
    assert await run(attempt, clock, policy()) == "ok"
    assert clock.sleeps == [7.5]


async def test_retry_after_above_the_maximum_gives_up_without_waiting() -> None:
    clock = FakeClock()
    with pytest.raises(RetryStopped) as stopped:
        await run(Failing(RateLimited("later", retry_after_s=31.0)), clock, policy())
    assert stopped.value.reason is StopReason.RETRY_AFTER_TOO_LONG
    assert clock.sleeps == []


async def test_gives_up_after_max_attempts_per_model() -> None:
    clock = FakeClock()
    attempt = Failing(*(ServerError("boom") for _ in range(10)))
    with pytest.raises(RetryStopped) as stopped:
        await run(attempt, clock, policy(max_attempts_per_model=3))
    assert stopped.value.reason is StopReason.EXHAUSTED
    assert stopped.value.tries == 3
    assert len(attempt.timeouts) == 3
    assert len(clock.sleeps) == 2


async def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    deadline = clock() + 1.0
    attempt = Failing(*(ServerError("boom") for _ in range(10)))
    with pytest.raises(RetryStopped) as stopped:
        await run(attempt, clock, policy(max_attempts_per_model=10), deadline)
    assert stopped.value.reason is StopReason.DEADLINE
    # 0.25 + 0.5 fit before the deadline; the next 1.0 would not, so it is never slept.
    assert clock.sleeps == [0.25, 0.5]
    assert clock() < deadline


async def test_retry_after_past_the_deadline_stops_at_once() -> None:
    clock = FakeClock()
    with pytest.raises(RetryStopped) as stopped:
        await run(Failing(RateLimited("wait", retry_after_s=5.0)), clock, policy(), clock() + 2.0)
    assert stopped.value.reason is StopReason.DEADLINE
    assert clock.sleeps == []


async def test_each_try_receives_the_time_left() -> None:
    clock = FakeClock()
    deadline = clock() + 10.0
    attempt = Failing(ServerError("boom"), ServerError("boom"))
    await run(attempt, clock, policy(), deadline)
    assert attempt.timeouts == pytest.approx([10.0, 9.75, 9.25])


async def test_no_deadline_means_no_timeout() -> None:
    clock = FakeClock()
    attempt = Failing()
    await run(attempt, clock, policy())
    assert attempt.timeouts == [None]


async def test_other_exceptions_pass_through_untouched() -> None:
    clock = FakeClock()

    async def cancelled(tries: int, timeout_s: float | None) -> str:
        raise asyncio.CancelledError

    async def deadline(tries: int, timeout_s: float | None) -> str:
        raise DeadlineExceeded("late")

    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(
            cancelled, policy=policy(), deadline=None, clock=clock, sleep=clock.sleep
        )
    with pytest.raises(DeadlineExceeded):
        await call_with_retries(
            deadline, policy=policy(), deadline=None, clock=clock, sleep=clock.sleep
        )
    assert clock.sleeps == []
