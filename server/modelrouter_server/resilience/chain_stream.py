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
- A tool call cannot be continued: its arguments are one JSON text the next model would
  not finish the same way. A break after any tool-call piece was sent ends the stream
  with an error (never a clean finish with half a call); before that, failover stays
  transparent as above.
- A resumed request runs without extended thinking: Anthropic refuses an assistant prefill
  while thinking is on, and the reasoning is already done.

A leg that breaks is billed on the router's own count of its input and the output it
sent (a cut stream carries no usage). Any emitted chunk, thinking included, counts as
"sent": after it, failover is no longer transparent. Cancellation (the consumer's
`aclose`, or the task being cancelled) closes the upstream stream at once through
`StreamLeg`'s exit and re-raises; nothing is swallowed.
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
    ThinkingChunk,
    ToolCallChunk,
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
from modelrouter_server.resilience.stall_watch import StepExpired
from modelrouter_server.resilience.stream_leg import StreamLeg
from modelrouter_server.resilience.timing import bounded
from modelrouter_server.stream_steps import pass_turn
from modelrouter_server.text_buffer import TextBuffer

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
    relay = _Relay(run)
    while not relay.out_of_time and (candidate := run.next_candidate()) is not None:
        opened = await relay.open(candidate)
        if opened is None:
            continue
        request, stream = opened
        async with stream:
            leg = relay.leg(candidate)
            event = stream.first
            try:
                while not isinstance(event, StreamEnd):
                    for shown in relay.passed_on(leg, event):
                        yield shown
                    event = await _next_or_stall(run, stream)
            except ProviderError as error:
                await pass_turn()  # the text before the break goes out first
                await relay.broke_off(leg, stream, request, error)
                continue
            await pass_turn()  # and the last text before the stream's accounting
            ending = await relay.ended(leg, stream, request, event)
            if ending is None:
                continue  # a refusal, held while the next candidate is tried
            for shown in ending:
                yield shown
            return
    for shown in relay.gave_up():
        yield shown


@dataclasses.dataclass(slots=True)
class _Leg:
    """What one candidate's stream has produced so far (mutable, local to the leg)."""

    candidate: Candidate
    announce: ChainStarted | ChainResumed | None
    """Sent with the first event the client sees from this leg, then None: a refusal
    passed over before anything was sent stays invisible."""
    held: list[RefusalChunk] | None
    """Refusal text held back until the model's verdict is known (refusal fallback on,
    nothing sent yet): shown only if no other candidate answers. None: pass it on."""
    output: _LegOutput
    """Everything generated, for counting usage a provider did not report."""


class _LegOutput:
    """Everything one leg generated, in order: its text chunks, thinking, refusals and
    tool-call arguments, for counting usage a provider did not report.

    The leg's text chunks are in the relay's text already (from `start` on, legs being
    one after another), so only the other pieces are kept here, with the order of the
    runs of each kind. A second copy of the text was, with the relay's, what a stream
    whose client stopped reading held twice.
    """

    __slots__ = ("_other", "_runs", "_start")

    def __init__(self, start: int) -> None:
        self._start = start
        self._other = TextBuffer()
        self._runs: list[tuple[bool, int]] = []
        """(relayed text or not, characters), consecutive pieces of a kind merged."""

    def append(self, piece: str, *, relayed_text: bool) -> None:
        """One piece; a `relayed_text` one must also be appended to the relay's text."""
        if not piece:
            return
        if not relayed_text:
            self._other.append(piece)
        if self._runs and self._runs[-1][0] is relayed_text:
            self._runs[-1] = (relayed_text, self._runs[-1][1] + len(piece))
        else:
            self._runs.append((relayed_text, len(piece)))

    def joined(self, relayed: str) -> str:
        """The leg's output as generated, given the relay's text so far."""
        other = str(self._other)
        parts: list[str] = []
        at_text, at_other = self._start, 0
        for relayed_text, chars in self._runs:
            if relayed_text:
                parts.append(relayed[at_text : at_text + chars])
                at_text += chars
            else:
                parts.append(other[at_other : at_other + chars])
                at_other += chars
        return "".join(parts)


class _Relay:
    """The progress of one streamed answer across its legs: what the client has seen.

    Mutable and owned by one `stream_chain` call; each method is one step of that loop.
    """

    def __init__(self, run: ChainRun) -> None:
        self.run = run
        self.text = TextBuffer()
        self.sent = False
        """Any chunk (thinking included) reached the client: failover is no longer
        transparent, only a continuation can follow."""
        self.tool_call_sent = False
        """A piece of a tool call reached the client: nothing can continue the answer."""
        self.started = False
        self.resumed_at: list[int] = []
        self.broke = ""
        """Why the previous leg ended, for `ChainResumed`."""
        self.refused: _HeldRefusal | None = None
        self.out_of_time = False
        """The deadline passed while a refusal was held: stop and answer with it."""

    async def open(self, candidate: Candidate) -> tuple[ProviderRequest, StreamLeg] | None:
        """The candidate's request and its stream (first event arrived), or None when it
        is skipped (recorded in the ledger)."""
        run, settings = self.run, self.run.settings
        resuming = self.sent
        if resuming and not candidate.config.capabilities.continuation:
            run.ledger.skip(
                candidate, Outcome.SKIPPED_CAPABILITY, "cannot continue a partial answer"
            )
            return None
        request = await run.build(candidate)
        if request is None:
            return None
        if resuming:
            request = continuation_request(request, str(self.text))
        try:
            stream = await call_with_retries(
                partial(run.open_stream, candidate, request),
                policy=settings.retry,
                deadline=run.deadline,
                clock=settings.clock,
                sleep=settings.sleep,
                log_context=run.log_context(candidate),
            )
        except CircuitOpen as error:
            run.skip_open_circuit(candidate, error)
            return None
        except RetryStopped as stop:
            # A resumed request that a model rejects is that model's limit, not the
            # caller's mistake: try the next one instead of failing the request.
            # Nor when a refusal is held: the caller still gets that answer.
            run.gave_up(candidate, stop, fail_fast=not resuming and self.refused is None)
            return None
        except DeadlineExceeded:
            if self.refused is not None and not self.sent:
                self.out_of_time = True
                return None
            raise run.failure(deadline=True) from None
        return request, stream

    def leg(self, candidate: Candidate) -> _Leg:
        """A new leg on `candidate`, announced as the start or as a resume."""
        announce: ChainStarted | ChainResumed = ChainStarted(candidate)
        if self.started:
            announce = ChainResumed(candidate, at_char=len(self.text), reason=self.broke)
        held: list[RefusalChunk] | None = (
            [] if self.run.refusal_falls_back() and not self.sent else None
        )
        return _Leg(candidate, announce, held, _LegOutput(len(self.text)))

    def passed_on(
        self, leg: _Leg, event: TextChunk | ThinkingChunk | RefusalChunk | ToolCallChunk
    ) -> list[ChainEvent]:
        """What the client is sent for one chunk: nothing (held), or the chunk, preceded
        by the leg's announcement if it is the leg's first."""
        leg.output.append(event.text, relayed_text=isinstance(event, TextChunk))
        if isinstance(event, RefusalChunk) and leg.held is not None:
            leg.held.append(event)
            return []
        shown: list[ChainEvent] = []
        if leg.announce is not None:
            shown.append(_announced(self.run, leg.announce, self.resumed_at))
            self.started, leg.announce = True, None
        if isinstance(event, TextChunk):
            self.text.append(event.text)
        elif isinstance(event, ToolCallChunk):
            self.tool_call_sent = True
        self.sent = True
        shown.append(event)
        return shown

    async def broke_off(
        self, leg: _Leg, stream: StreamLeg, request: ProviderRequest, error: ProviderError
    ) -> None:
        """Record a leg that broke; raises when the answer cannot be continued."""
        run, candidate = self.run, stream.candidate
        stream.failed(run.ledger, error)
        # The provider billed what it read and wrote before the break, but a cut stream
        # carries no usage: count it, or a resumed answer's cost would leave this leg out.
        usage = await run.usage_of(candidate, request, None, leg.output.joined(str(self.text)))
        run.ledger.bill(candidate, usage)
        self.broke = f"{candidate.model_id} {describe_error(error)}"
        log.warning(
            "stream_interrupted",
            **run.log_context(candidate),
            attempt=run.ledger.tries(candidate),
            at_char=len(self.text),
            error_class=type(error).__name__,
            error=error.message,
        )
        if self.tool_call_sent:
            raise run.failure(
                f"the stream broke inside a tool call ({self.broke}); a tool call cannot be "
                "continued, so the reply is incomplete: send the request again"
            ) from error
        if len(self.text) == 0 and self.sent:
            raise run.failure(
                f"the stream broke during thinking, before any answer text "
                f"({self.broke}); thinking cannot be continued"
            ) from error
        _maybe_retry_same(run, candidate)

    async def ended(
        self, leg: _Leg, stream: StreamLeg, request: ProviderRequest, end: StreamEnd
    ) -> list[ChainEvent] | None:
        """The last events of an answer that ended cleanly, or None when it is a refusal
        held back while the next candidate is tried."""
        run, candidate = self.run, leg.candidate
        relayed = str(self.text)
        usage = await run.usage_of(candidate, request, end.usage, leg.output.joined(relayed))
        stream.succeeded(run.ledger, usage)
        finish = _finished(run, candidate, end, self.resumed_at, relayed)
        if end.finish_reason is FinishReason.REFUSAL and not self.sent and run.refusal_falls_back():
            run.passed_over_refusal(candidate)
            self.refused = _HeldRefusal(leg.announce, tuple(leg.held or ()), finish)
            self.broke = f"{candidate.model_id} refused"
            return None
        shown: list[ChainEvent] = []
        if leg.announce is not None:
            shown.append(_announced(run, leg.announce, self.resumed_at))
        shown.extend(leg.held or ())
        shown.append(finish)
        return shown

    def gave_up(self) -> list[ChainEvent]:
        """No candidate finished: a held refusal is the answer, else the run fails."""
        run, refused = self.run, self.refused
        if refused is not None and not self.sent:
            # Every candidate after the refusal failed: the refusal is the answer.
            shown: list[ChainEvent] = []
            if refused.announce is not None and not self.started:
                shown.append(refused.announce)
            shown.extend(refused.chunks)
            shown.append(
                dataclasses.replace(
                    refused.finish,
                    usage=run.ledger.usage,
                    cost_usd=run.ledger.cost_usd,
                    attempts=run.ledger.attempts,
                )
            )
            return shown
        context = f"the stream broke after {len(self.text)} characters and could not be continued"
        raise run.failure(context if self.sent else "")


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
    run: ChainRun, candidate: Candidate, end: StreamEnd, resumed_at: list[int], text: str
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
        tool_calls=end.tool_calls,
        text=text,
    )


async def _next_or_stall(run: ChainRun, leg: StreamLeg) -> StreamEvent:
    """The leg's next event, with the inter-token timeout turned into a stall."""
    left = run.remaining()
    limit, by_deadline = bounded(run.settings.policy.inter_token_timeout_s, left)
    try:
        return await leg.next(limit, within_s=left)
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
