"""The streaming fallback chain: transparent failover, then mid-stream resume.

Before anything is sent downstream, a failure is invisible to the client: the retry loop
tries again, or the next candidate starts from scratch (time-to-first-token timeout
included). Once a chunk has been sent the answer can only be continued:

- A break after text (error event, dropped connection, truncation, or a stall past
  `inter_token_timeout_s`) continues on the NEXT candidate: its request ends with an
  assistant message holding the text so far, which providers treat as "continue this", so
  it yields only the rest. `ChainResumed(candidate, at_char, reason)` marks the seam.
- When no other remaining candidate can continue (the broken one was the last, or the rest
  lack `continuation`), the broken candidate itself is tried again for the resume, within
  its `max_attempts_per_model`: a mid-stream drop is usually transient, and with
  `disable_fallback` it is the only model allowed.
- Continuing is refused (the stream ends with `NoCandidates`, never a clean finish) when no
  remaining candidate has the `continuation` capability, or when only thinking was sent:
  reasoning cannot be continued on another model and the answer has not started, so a
  restart would show the client a second, different chain of thought.
- A resumed request runs without extended thinking: Anthropic refuses an assistant prefill
  while thinking is on, and the reasoning is already done.

Any emitted chunk, thinking included, counts as "sent": after it, failover is no longer
transparent. Cancellation (the consumer's `aclose`, or the task being cancelled) closes the
upstream stream at once through `StreamLeg`'s exit and re-raises; nothing is swallowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from functools import partial

import structlog

from modelrouter_server.attempts import Outcome
from modelrouter_server.candidates import Candidate
from modelrouter_server.domain import (
    FinishReason,
    Message,
    ProviderRequest,
    RefusalChunk,
    Role,
    StreamEnd,
    StreamEvent,
    TextChunk,
)
from modelrouter_server.errors import (
    DeadlineExceeded,
    InterruptionKind,
    ProviderError,
    StreamInterrupted,
)
from modelrouter_server.resilience.breakers import CircuitOpen
from modelrouter_server.resilience.events import (
    ChainEvent,
    ChainFinished,
    ChainResumed,
    ChainStarted,
)
from modelrouter_server.resilience.ledger import describe_error
from modelrouter_server.resilience.retry import RetryStopped, call_with_retries
from modelrouter_server.resilience.run import ChainRun
from modelrouter_server.resilience.stream_leg import StepExpired, StreamLeg
from modelrouter_server.resilience.timing import bounded

log = structlog.get_logger(__name__)


def continuation_request(request: ProviderRequest, text_so_far: str) -> ProviderRequest:
    """`request` asking the model to continue `text_so_far` rather than start over."""
    return dataclasses.replace(
        request,
        messages=(*request.messages, Message(Role.ASSISTANT, text_so_far)),
        thinking_budget_tokens=None,
    )


async def stream_chain(run: ChainRun) -> AsyncGenerator[ChainEvent, None]:
    """Stream one answer over the run's candidates; see the module docstring."""
    settings = run.settings
    text: list[str] = []
    text_chars = 0
    sent = False
    started = False
    resumed_at: list[int] = []
    broke: str = ""  # why the previous leg broke, for ChainResumed
    refused: _HeldRefusal | None = None

    while (candidate := run.next_candidate()) is not None:
        resuming = sent
        if resuming and not candidate.config.capabilities.continuation:
            run.ledger.skip(
                candidate, Outcome.SKIPPED_CAPABILITY, "cannot continue a partial answer"
            )
            continue
        request = await run.build(candidate)
        if request is None:
            continue
        if resuming:
            request = continuation_request(request, "".join(text))
        try:
            leg = await call_with_retries(
                partial(run.open_stream, candidate, request),
                policy=settings.retry,
                deadline=run.deadline,
                clock=settings.clock,
                sleep=settings.sleep,
                log_context=run.log_context(candidate),
            )
        except CircuitOpen as error:
            run.skip_open_circuit(candidate, error)
            continue
        except RetryStopped as stop:
            # A resumed request that a model rejects is that model's limit, not the
            # caller's mistake: try the next one instead of failing the request.
            run.gave_up(candidate, stop, fail_fast=not resuming)
            continue
        except DeadlineExceeded:
            if refused is not None and not sent:
                break
            raise run.failure(deadline=True) from None

        async with leg:
            # The leg is announced with the first event the client sees from it, so a
            # refusal passed over before anything was sent stays invisible.
            announce: ChainStarted | ChainResumed | None = ChainStarted(candidate)
            if started:
                announce = ChainResumed(candidate, at_char=text_chars, reason=broke)
            # With refusal fallback on, refusal text is held back until the model's
            # verdict is known: it is only shown if no other candidate answers.
            held: list[RefusalChunk] | None = [] if run.refusal_falls_back() and not sent else None
            output: list[str] = []
            event = leg.first
            try:
                while not isinstance(event, StreamEnd):
                    output.append(event.text)
                    if isinstance(event, RefusalChunk) and held is not None:
                        held.append(event)
                    else:
                        if announce is not None:
                            yield _announced(run, announce, resumed_at)
                            started, announce = True, None
                        if isinstance(event, TextChunk):
                            text.append(event.text)
                            text_chars += len(event.text)
                        sent = True
                        yield event
                    event = await _next_or_stall(run, leg)
            except ProviderError as error:
                leg.failed(run.ledger, error)
                broke = f"{candidate.model_id} {describe_error(error)}"
                log.warning(
                    "stream_interrupted",
                    **run.log_context(candidate),
                    attempt=run.ledger.tries(candidate),
                    at_char=text_chars,
                    error_class=type(error).__name__,
                    error=error.message,
                )
                if text_chars == 0 and sent:
                    raise run.failure(
                        f"the stream broke during thinking, before any answer text "
                        f"({broke}); thinking cannot be continued"
                    ) from error
                _maybe_retry_same(run, candidate)
                continue
            usage = run.usage_of(candidate, request, event.usage, "".join(output))
            leg.succeeded(run.ledger, usage)
            finish = _finished(run, candidate, event, resumed_at)
            if (
                event.finish_reason is FinishReason.REFUSAL
                and not sent
                and run.refusal_falls_back()
            ):
                run.passed_over_refusal(candidate)
                refused = _HeldRefusal(announce, tuple(held or ()), finish)
                broke = f"{candidate.model_id} refused"
                continue
            if announce is not None:
                yield _announced(run, announce, resumed_at)
            for chunk in held or ():
                yield chunk
            yield finish
            return

    if refused is not None and not sent:
        # Every candidate after the refusal failed: the refusal is the answer.
        if refused.announce is not None and not started:
            yield refused.announce
        for chunk in refused.chunks:
            yield chunk
        yield dataclasses.replace(
            refused.finish,
            usage=run.ledger.usage,
            cost_usd=run.ledger.cost_usd,
            attempts=run.ledger.attempts,
        )
        return
    context = f"the stream broke after {text_chars} characters and could not be continued"
    raise run.failure(context if sent else "")


@dataclasses.dataclass(frozen=True, slots=True)
class _HeldRefusal:
    """A refusal passed over for the next candidate, kept in case none answers."""

    announce: ChainStarted | ChainResumed | None
    chunks: tuple[RefusalChunk, ...]
    finish: ChainFinished


def _announced(
    run: ChainRun, announce: ChainStarted | ChainResumed, resumed_at: list[int]
) -> ChainStarted | ChainResumed:
    """`announce`, noting a resume where it happens."""
    if isinstance(announce, ChainResumed):
        resumed_at.append(announce.at_char)
        log.info(
            "stream_resumed",
            **run.log_context(announce.candidate),
            attempt=run.ledger.tries(announce.candidate) + 1,
            at_char=announce.at_char,
            reason=announce.reason,
        )
    return announce


def _finished(
    run: ChainRun, candidate: Candidate, end: StreamEnd, resumed_at: list[int]
) -> ChainFinished:
    return ChainFinished(
        finish_reason=end.finish_reason,
        usage=run.ledger.usage,
        cost_usd=run.ledger.cost_usd,
        attempts=run.ledger.attempts,
        candidate=candidate,
        fallback=not run.is_first(candidate),
        resumed_at_chars=tuple(resumed_at),
        refusal=end.refusal,
        provider_model=end.provider_model,
        finish_detail=end.finish_detail,
    )


async def _next_or_stall(run: ChainRun, leg: StreamLeg) -> StreamEvent:
    """The leg's next event, with the inter-token timeout turned into a stall."""
    limit, by_deadline = bounded(run.settings.policy.inter_token_timeout_s, run.remaining())
    try:
        return await leg.next(limit)
    except StepExpired:
        if by_deadline:
            leg.abandoned(run.ledger, "deadline exceeded mid-stream")
            raise run.failure(deadline=True) from None
        raise StreamInterrupted(
            f"no token for {limit:.2f}s",
            kind=InterruptionKind.STALLED,
            provider=leg.candidate.provider,
            model=leg.candidate.model_id,
        ) from None


def _maybe_retry_same(run: ChainRun, candidate: Candidate) -> None:
    """Resume on the broken candidate itself when no other candidate could."""
    if (
        not run.can_continue_elsewhere()
        and candidate.config.capabilities.continuation
        and run.ledger.tries(candidate) < run.settings.policy.max_attempts_per_model
    ):
        run.try_again_later(candidate)
