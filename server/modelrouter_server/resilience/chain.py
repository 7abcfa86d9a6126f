"""The fallback chain: the API the gRPC servicer calls to get an answer for a plan.

    chain = FallbackChain(providers, breakers, config.resilience)
    result = await chain.complete(plan, build, deadline=time.monotonic() + 30)
    async with contextlib.aclosing(chain.stream(plan, build, deadline=...)) as events:
        async for event in events: ...

Unary: per candidate, breaker -> retry loop -> provider call (see `run`). Streaming adds
the time-to-first-token timeout, the inter-token stall timeout and mid-stream resume (see
`chain_stream`). Both raise `NoCandidates` (every candidate failed, with each attempt and a
message naming the models and why), `DeadlineExceeded`, or a 400-class
`InvalidProviderRequest` unchanged (no fallback for a request that is itself wrong).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncGenerator, Mapping
from functools import partial
from typing import TYPE_CHECKING

from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.config.schema import ResilienceConfig
from modelrouter_server.domain import Completion, FinishReason, ProviderRequest
from modelrouter_server.errors import DeadlineExceeded
from modelrouter_server.resilience.breakers import BreakerRegistry, CircuitOpen
from modelrouter_server.resilience.chain_stream import stream_chain
from modelrouter_server.resilience.events import ChainEvent, ChainResult, RequestBuilder
from modelrouter_server.resilience.retry import RetryPolicy, RetryStopped, call_with_retries
from modelrouter_server.resilience.run import ChainRun, ChainSettings
from modelrouter_server.resilience.timing import ASYNCIO_SLEEP, MONOTONIC, Clock, Sleep
from modelrouter_server.usage_counting import LocalCounter

if TYPE_CHECKING:
    # Only the protocol is needed, and importing the providers package loads both SDKs.
    from modelrouter_server.providers.base import Provider


class FallbackChain:
    """Runs a `RoutePlan` against the providers with retries, breakers and fallback.

    `clock` and `sleep` default to `time.monotonic` and `asyncio.sleep`; tests pass a fake
    pair so backoff and cool-downs take no real time. Deadlines are on `clock`'s scale.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        breakers: BreakerRegistry,
        policy: ResilienceConfig,
        *,
        clock: Clock = MONOTONIC,
        sleep: Sleep = ASYNCIO_SLEEP,
        rng: random.Random | None = None,
        counter: LocalCounter | None = None,
    ) -> None:
        self._settings = ChainSettings(
            providers=providers,
            breakers=breakers,
            policy=policy,
            retry=RetryPolicy(policy, rng=rng),
            clock=clock,
            sleep=sleep,
            counter=counter,
        )

    async def complete(
        self, plan: RoutePlan, build: RequestBuilder, *, deadline: float | None
    ) -> ChainResult:
        """One complete answer from the first candidate that gives one.

        A refusal is an answer, unless the plan falls back on refusals and another
        candidate is queued; if every later candidate fails, the refusal is returned.
        """
        run = ChainRun(self._settings, plan, build, deadline)
        settings = self._settings
        refused: ChainResult | None = None
        while (candidate := run.next_candidate()) is not None:
            request = await run.build(candidate)
            if request is None:
                continue
            try:
                completion = await call_with_retries(
                    partial(run.complete_once, candidate, request),
                    policy=settings.retry,
                    deadline=deadline,
                    clock=settings.clock,
                    sleep=settings.sleep,
                    log_context=run.log_context(candidate),
                )
            except CircuitOpen as error:
                run.skip_open_circuit(candidate, error)
                continue
            except RetryStopped as stop:
                # With a refusal in hand, a later model rejecting the request must not
                # lose the answer the caller already has.
                run.gave_up(candidate, stop, fail_fast=refused is None)
                continue
            except DeadlineExceeded:
                if refused is not None:
                    return _with_ledger(refused, run)
                raise run.failure(deadline=True) from None
            result = ChainResult(
                completion=completion,
                candidate=candidate,
                attempts=run.ledger.attempts,
                fallback=not run.is_first(candidate),
                usage=run.ledger.usage,
                cost_usd=run.ledger.cost_usd,
            )
            if completion.finish_reason is FinishReason.REFUSAL and run.refusal_falls_back():
                run.passed_over_refusal(candidate)
                refused = result
                continue
            return result
        if refused is not None:
            return _with_ledger(refused, run)
        raise run.failure()

    def stream(
        self, plan: RoutePlan, build: RequestBuilder, *, deadline: float | None
    ) -> AsyncGenerator[ChainEvent, None]:
        """Stream one answer: `ChainStarted`, chunks (with `ChainResumed` at any seam),
        then `ChainFinished`; or raise. Close it (`aclose`) or cancel the consuming task
        to stop it: the upstream request is closed at once."""
        return stream_chain(ChainRun(self._settings, plan, build, deadline))

    async def complete_request(self, candidate: Candidate, request: ProviderRequest) -> Completion:
        """`request` answered by `candidate`'s model through its breaker and the retry loop,
        without fallback: how the router's own calls (summaries) take the same path as a
        caller's. `request.timeout_s` sets the deadline. Raises as `complete` does."""
        clock = self._settings.clock
        deadline = None if request.timeout_s is None else clock() + request.timeout_s

        async def build(_candidate: Candidate, timeout_s: float | None) -> ProviderRequest:
            return dataclasses.replace(request, timeout_s=timeout_s)

        result = await self.complete(RoutePlan((candidate,)), build, deadline=deadline)
        return result.completion


def _with_ledger(result: ChainResult, run: ChainRun) -> ChainResult:
    """A refusal kept while later candidates were tried, with every attempt and their cost."""
    return dataclasses.replace(
        result, attempts=run.ledger.attempts, usage=run.ledger.usage, cost_usd=run.ledger.cost_usd
    )
