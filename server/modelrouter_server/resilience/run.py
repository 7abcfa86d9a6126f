"""One request's trip through the fallback chain: the steps shared by unary and streaming.

A `ChainRun` walks the plan's candidates in order. For each it builds the request, then
runs tries through the retry loop, each try behind the endpoint's breaker:

    candidate -> build request -> [retry loop: breaker permit -> provider call] -> next

and decides what a failure means: retry (the loop), next candidate (health failures, open
circuits, upstream auth/permission/not-found, exhausted retries), next candidate with a
larger window (context window exceeded), or stop (a 400-class request error, the deadline).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import structlog

from modelrouter_server.attempts import Outcome
from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.config.schema import ResilienceConfig
from modelrouter_server.domain import Completion, ProviderRequest, StreamEvent, Usage
from modelrouter_server.errors import (
    ContextWindowExceeded,
    DeadlineExceeded,
    InvalidProviderRequest,
    ProviderError,
    ProviderTimeout,
    RouterError,
)
from modelrouter_server.resilience.breakers import BreakerRegistry, CircuitOpen
from modelrouter_server.resilience.events import RequestBuilder
from modelrouter_server.resilience.ledger import AttemptLedger
from modelrouter_server.resilience.retry import RetryPolicy, RetryStopped, StopReason
from modelrouter_server.resilience.stall_watch import StallWatch, StepExpired
from modelrouter_server.resilience.stream_leg import StreamLeg, close_stream, next_event
from modelrouter_server.resilience.timing import Clock, Sleep, bounded, remaining_s
from modelrouter_server.usage_counting import LocalCounter, usage_or_count

if TYPE_CHECKING:
    # Only the protocol is needed, and importing the providers package loads both SDKs.
    from modelrouter_server.providers.base import Provider

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ChainSettings:
    """What every run of one `FallbackChain` shares."""

    providers: Mapping[str, Provider]
    breakers: BreakerRegistry
    policy: ResilienceConfig
    retry: RetryPolicy
    clock: Clock
    sleep: Sleep
    counter: LocalCounter | None = None
    """Counts the usage of a call whose provider reported none."""


class ChainRun:
    """The mutable state of one request: candidates left, attempts, usage."""

    def __init__(
        self,
        settings: ChainSettings,
        plan: RoutePlan,
        build: RequestBuilder,
        deadline: float | None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.deadline = deadline
        self.ledger = AttemptLedger(plan, settings.clock)
        self._build = build
        # The candidates left, the next one last: a list, where a deque would be a
        # 600-byte block for every stream held open.
        self._left: list[Candidate] = list(reversed(plan.candidates))
        # After a context-window overflow only larger windows are worth trying.
        self._window_floor = 0
        self.request_id = ""

    # -- candidates --------------------------------------------------------------------

    def next_candidate(self) -> Candidate | None:
        """The next candidate worth trying, recording those passed over."""
        while self._left:
            candidate = self._left.pop()
            if self.deadline_passed():
                self.ledger.skip(candidate, Outcome.SKIPPED_DEADLINE, "deadline passed")
                continue
            window = candidate.config.context_window
            if window <= self._window_floor:
                self.ledger.skip(
                    candidate,
                    Outcome.SKIPPED_CONTEXT_WINDOW,
                    f"window of {window} tokens is not larger than one that overflowed",
                )
                continue
            return candidate
        return None

    def has_more(self) -> bool:
        """Whether a candidate is still queued (it may yet be skipped)."""
        return bool(self._left)

    def refusal_falls_back(self) -> bool:
        """Whether a refusal should be passed over for the next candidate."""
        return self.plan.refusal_fallback and self.has_more()

    def can_continue_elsewhere(self) -> bool:
        """Whether a candidate still queued could continue a partial answer."""
        return any(c.config.capabilities.continuation for c in self._left)

    def try_again_later(self, candidate: Candidate) -> None:
        """Put `candidate` back at the front (a stream resumed on the model that broke)."""
        self._left.append(candidate)

    def is_first(self, candidate: Candidate) -> bool:
        return bool(self.plan.candidates) and candidate.model_id == self.plan.candidates[0].model_id

    # -- deadline ----------------------------------------------------------------------

    def remaining(self) -> float | None:
        return remaining_s(self.deadline, self.settings.clock)

    def deadline_passed(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def failure(self, context: str = "", *, deadline: bool = False) -> RouterError:
        """The error that ends the run; `deadline` when the caller's deadline is known to
        be the cause (the clock and the event loop's timer may disagree by a hair)."""
        return self.ledger.failure(
            deadline_passed=deadline or self.deadline_passed(), context=context
        )

    # -- steps -------------------------------------------------------------------------

    def log_context(self, candidate: Candidate) -> dict[str, object]:
        return {
            "request_id": self.request_id,
            "model": candidate.model_id,
            "provider": candidate.provider,
        }

    async def build(self, candidate: Candidate) -> ProviderRequest | None:
        """The request for `candidate`, or None when its window cannot hold the history."""
        left = self.remaining()
        scope = asyncio.timeout(left)
        try:
            async with scope:
                request = await self._build(candidate, left)
        except ContextWindowExceeded as error:
            self.ledger.skip(candidate, Outcome.SKIPPED_CONTEXT_WINDOW, error.message)
            self._window_floor = max(self._window_floor, candidate.config.context_window)
            return None
        except TimeoutError:
            if scope.expired():
                raise self.failure("while preparing the request", deadline=True) from None
            raise
        self.request_id = self.request_id or request.request_id
        return request

    def passed_over_refusal(self, candidate: Candidate) -> None:
        """`candidate` refused and the route falls back on refusals."""
        self.ledger.refused(candidate)
        log.info("falling_back", **self.log_context(candidate), reason="refused")

    def skip_open_circuit(self, candidate: Candidate, error: CircuitOpen) -> None:
        self.ledger.skip(candidate, Outcome.SKIPPED_CIRCUIT_OPEN, f"circuit {error.state.value}")
        log.info("falling_back", **self.log_context(candidate), reason="circuit open")

    def gave_up(self, candidate: Candidate, stop: RetryStopped, *, fail_fast: bool) -> None:
        """Handle the retry loop leaving `candidate`: raise, or let the next one go."""
        error = stop.error
        if isinstance(error, ContextWindowExceeded):
            self._window_floor = max(self._window_floor, candidate.config.context_window)
        elif isinstance(error, InvalidProviderRequest) and fail_fast:
            # The request itself is wrong: every other model would refuse it too.
            raise error
        self.ledger.gave_up(candidate, stop)
        log.warning(
            "falling_back",
            **self.log_context(candidate),
            attempt=stop.tries,
            reason=stop.reason.value,
            error_class=type(error).__name__,
            error=error.message,
        )

    def provider(self, candidate: Candidate) -> Provider:
        return self.settings.providers[candidate.provider]

    # -- one unary try -----------------------------------------------------------------

    async def complete_once(
        self, candidate: Candidate, request: ProviderRequest, tries: int, timeout_s: float | None
    ) -> Completion:
        """One upstream call behind the breaker; raises `ProviderError` for the loop."""
        permit = self.settings.breakers.acquire(candidate.provider, candidate.model_id)
        clock = self.settings.clock
        started = clock()
        with permit:
            scope = asyncio.timeout(timeout_s)
            try:
                async with scope:
                    completion = await self.provider(candidate).complete(
                        dataclasses.replace(request, timeout_s=timeout_s)
                    )
            except TimeoutError:
                if not scope.expired():
                    raise
                self.ledger.tried(
                    candidate, Outcome.ERROR, started=started, note="deadline exceeded"
                )
                raise DeadlineExceeded("deadline exceeded during the call") from None
            except ProviderError as error:
                permit.failure(error)
                self.ledger.tried(candidate, Outcome.ERROR, started=started, error=error)
                raise
            permit.success()
        self.ledger.tried(candidate, Outcome.SUCCESS, started=started, first_token_at=clock())
        output = completion.text + completion.thinking
        if completion.refusal is not None and completion.refusal.text != completion.text:
            output += completion.refusal.text
        # A tool call is generated output too (a stream counts its pieces the same way).
        output += "".join(
            call.name + json.dumps(call.arguments, ensure_ascii=False)
            for call in completion.tool_calls
        )
        usage = await self.usage_of(candidate, request, completion.usage, output)
        self.ledger.bill(candidate, usage)
        return dataclasses.replace(completion, usage=usage)

    async def usage_of(
        self, candidate: Candidate, request: ProviderRequest, reported: Usage | None, output: str
    ) -> Usage:
        """The provider's usage, or the router's count of the call when it sent none."""
        return await usage_or_count(
            reported,
            counter=self.settings.counter,
            provider=candidate.provider,
            request=request,
            output=output,
            hidden_reasoning=candidate.config.capabilities.reasoning_effort,
        )

    # -- one streaming try, up to its first event --------------------------------------

    async def open_stream(
        self, candidate: Candidate, request: ProviderRequest, tries: int, timeout_s: float | None
    ) -> StreamLeg:
        """Start a stream and wait for its first event (time-to-first-token timeout).

        A slow first token fails over at once (raises `RetryStopped`) rather than
        retrying the same model: the timeout exists to bound latency.
        """
        permit = self.settings.breakers.acquire(candidate.provider, candidate.model_id)
        clock = self.settings.clock
        started = clock()
        ttft_limit = candidate.config.ttft_timeout_s or self.settings.policy.ttft_timeout_s
        limit, by_deadline = bounded(ttft_limit, timeout_s)
        # The leg's timer exists before its first read, which tells it what the transport
        # is (stream_steps); a leg that fails to open closes it.
        watch = StallWatch()
        stream: AsyncIterator[StreamEvent] = self.provider(candidate).stream(
            dataclasses.replace(request, timeout_s=timeout_s)
        )
        try:
            try:
                first = await next_event(stream, limit)
            except StepExpired:
                await close_stream(stream)
                if by_deadline:
                    permit.release()
                    self.ledger.tried(
                        candidate, Outcome.ERROR, started=started, note="deadline exceeded"
                    )
                    raise DeadlineExceeded("deadline exceeded before the first token") from None
                error = ProviderTimeout(
                    f"no first token within {limit:.2f}s",
                    provider=candidate.provider,
                    model=candidate.model_id,
                )
                permit.failure(error)
                self.ledger.tried(candidate, Outcome.ERROR, started=started, error=error)
                raise RetryStopped(error, StopReason.FIRST_TOKEN_TIMEOUT, tries) from None
            except ProviderError as error:
                await close_stream(stream)
                permit.failure(error)
                self.ledger.tried(candidate, Outcome.ERROR, started=started, error=error)
                raise
            except BaseException:
                # Cancelled (or a bug): close the upstream request and free the breaker slot.
                await close_stream(stream)
                permit.release()
                raise
        except BaseException:
            watch.close()
            raise
        permit.first_token()
        return StreamLeg(
            candidate, stream, first, permit, started=started, first_at=clock(), watch=watch
        )
