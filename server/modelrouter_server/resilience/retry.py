"""The one retry loop: which failures are retried, how long to wait, when to give up.

Only provider-health failures (`facts_for(error).retryable`: 429 other than quota, 5xx, 529,
timeouts, connection errors) are retried, and only on the same candidate; everything else
is the fallback chain's business. Retries live here and nowhere else: providers build their
SDK clients with `max_retries=0`.

Waiting:
- a `retry_after_s` on the error (the provider read `retry-after`, `retry-after-ms` or a
  rate-limit reset header) is honoured exactly;
- otherwise exponential backoff, `backoff_initial_s * 2**(n-1)` capped at `backoff_max_s`,
  with `backoff_jitter` of it drawn at random: 1.0 is "full jitter" (uniform in
  [0, delay]), 0.0 no jitter, and values between keep a floor so retries never bunch at 0.

Giving up on a candidate (the chain then falls back): the error is not retryable, the tries
reached `max_attempts_per_model`, the provider asks for more than `max_retry_after_s`, or
the wait would reach the caller's deadline. The loop never sleeps past the deadline.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog

from modelrouter_server.config.schema import ResilienceConfig
from modelrouter_server.error_facts import facts_for
from modelrouter_server.errors import DeadlineExceeded, ProviderError
from modelrouter_server.resilience.timing import Clock, Sleep, remaining_s

log = structlog.get_logger(__name__)

T = TypeVar("T")


class StopReason(enum.Enum):
    """Why the loop stopped trying one candidate."""

    NOT_RETRYABLE = "not_retryable"
    EXHAUSTED = "exhausted"
    RETRY_AFTER_TOO_LONG = "retry_after_too_long"
    DEADLINE = "deadline"
    FIRST_TOKEN_TIMEOUT = "first_token_timeout"
    """Raised by a streaming attempt itself: a slow first token fails over at once."""


class RetryStopped(Exception):
    """The loop gave up on one candidate; `error` is its last failure.

    Internal to the resilience layer: the fallback chain catches it and moves on, so it
    never reaches the API edge.
    """

    def __init__(self, error: ProviderError, reason: StopReason, tries: int) -> None:
        super().__init__(f"{reason.value} after {tries} tries: {error.message}")
        self.error = error
        self.reason = reason
        self.tries = tries


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Either wait `delay_s` and try again (`stop` is None), or stop for `stop`."""

    delay_s: float = 0.0
    stop: StopReason | None = None


class RetryPolicy:
    """Decides, after one failed try, whether and when to try the same candidate again."""

    def __init__(self, config: ResilienceConfig, *, rng: random.Random | None = None) -> None:
        self._config = config
        # A seeded `random.Random` makes the jitter reproducible in tests.
        self._rng = rng if rng is not None else random.Random()

    @property
    def max_attempts(self) -> int:
        return self._config.max_attempts_per_model

    def backoff_s(self, retry: int) -> float:
        """The jittered wait before retry number `retry` (1 = the first retry)."""
        ceiling = min(
            self._config.backoff_max_s,
            self._config.backoff_initial_s * 2.0 ** max(retry - 1, 0),
        )
        return ceiling * (1.0 - self._config.backoff_jitter * self._rng.random())

    def decide(
        self, error: ProviderError, *, tries: int, now: float, deadline: float | None
    ) -> RetryDecision:
        """What to do after try number `tries` failed with `error` at time `now`."""
        if not facts_for(error).retryable:
            return RetryDecision(stop=StopReason.NOT_RETRYABLE)
        if tries >= self._config.max_attempts_per_model:
            return RetryDecision(stop=StopReason.EXHAUSTED)
        if error.retry_after_s is not None:
            if error.retry_after_s > self._config.max_retry_after_s:
                return RetryDecision(stop=StopReason.RETRY_AFTER_TOO_LONG)
            delay = error.retry_after_s
        else:
            delay = self.backoff_s(tries)
        # Waking up exactly at the deadline leaves no time for the call itself.
        if deadline is not None and now + delay >= deadline:
            return RetryDecision(stop=StopReason.DEADLINE)
        return RetryDecision(delay_s=delay)


Attempt = Callable[[int, float | None], Awaitable[T]]
"""One try: receives the try number (1-based) and the seconds left before the deadline."""


async def call_with_retries(
    attempt: Attempt[T],
    *,
    policy: RetryPolicy,
    deadline: float | None,
    clock: Clock,
    sleep: Sleep,
    log_context: Mapping[str, object] | None = None,
) -> T:
    """Run `attempt` until it returns, retrying provider-health failures per `policy`.

    Raises `RetryStopped` (carrying the last `ProviderError`) when the candidate should be
    given up, `DeadlineExceeded` when no time is left for a try. Anything else `attempt`
    raises (cancellation, `DeadlineExceeded`, the chain's own signals) passes through.
    """
    context = dict(log_context or {})
    tries = 0
    while True:
        timeout_s = remaining_s(deadline, clock)
        if timeout_s is not None and timeout_s <= 0:
            raise DeadlineExceeded("the deadline passed before the call")
        tries += 1
        try:
            return await attempt(tries, timeout_s)
        except ProviderError as error:
            decision = policy.decide(error, tries=tries, now=clock(), deadline=deadline)
            if decision.stop is not None:
                raise RetryStopped(error, decision.stop, tries) from error
            log.info(
                "retrying",
                **context,
                attempt=tries,
                delay_s=round(decision.delay_s, 3),
                error_class=type(error).__name__,
                error=error.message,
                retry_after_s=error.retry_after_s,
            )
            await sleep(decision.delay_s)
