"""Reading one upstream stream: timed steps, closing, and the breaker/ledger bookkeeping.

The first `__anext__` runs under its own `asyncio.timeout` (a slow first token); the
following ones under the leg's `StallWatch` (no event for `inter_token_timeout_s`), one
timer per leg rather than one per token. Either way no helper task is needed, and when the
timeout fires the provider's generator is cancelled at its await point, which closes its
HTTP response; `close_stream` then makes sure of it on every other exit.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator

from modelrouter_server.attempts import Outcome
from modelrouter_server.candidates import Candidate
from modelrouter_server.domain import StreamEvent, Usage
from modelrouter_server.errors import InterruptionKind, ProviderError, StreamInterrupted
from modelrouter_server.resilience.breakers import Permit
from modelrouter_server.resilience.ledger import AttemptLedger
from modelrouter_server.resilience.stall_watch import StallWatch, timed_step


async def next_event(stream: AsyncIterator[StreamEvent], timeout_s: float) -> StreamEvent:
    """The stream's next event within `timeout_s`, else `StepExpired`.

    A stream that ends without its `StreamEnd` is a truncated answer; providers report it
    themselves, and this makes sure of it for any that does not.
    """
    try:
        event: StreamEvent = await timed_step(stream, timeout_s)
    except StopAsyncIteration:
        raise _truncated() from None
    return event


def _truncated() -> StreamInterrupted:
    return StreamInterrupted(
        "the stream ended without its terminal event", kind=InterruptionKind.TRUNCATED
    )


async def close_stream(stream: AsyncIterator[StreamEvent]) -> None:
    """Close a provider stream (an async generator, or anything with `aclose`)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


class StreamLeg:
    """An open upstream stream whose first event has arrived.

    Used as an async context manager: on any exit (including cancellation and the consumer
    closing the chain's generator) the upstream stream is closed and an unreported breaker
    permit is released, so nothing leaks.
    """

    def __init__(
        self,
        candidate: Candidate,
        stream: AsyncIterator[StreamEvent],
        first: StreamEvent,
        permit: Permit,
        *,
        started: float,
        first_at: float,
        watch: StallWatch,
    ) -> None:
        self.candidate = candidate
        self.first = first
        self.started = started
        self.first_at = first_at
        self._stream = stream
        self._permit = permit
        self._watch = watch
        """The leg's stall timer, made before its first read (see `ChainRun.open_stream`)."""

    async def next(self, timeout_s: float, *, within_s: float | None = None) -> StreamEvent:
        """The next event; raises `StepExpired` on a stall, `ProviderError` on a break.
        `within_s`: what is left of the caller's deadline (None: no deadline)."""
        try:
            event: StreamEvent = await self._watch.step(self._stream, timeout_s, within_s=within_s)
        except StopAsyncIteration:
            raise _truncated() from None
        return event

    def succeeded(self, ledger: AttemptLedger, usage: Usage) -> None:
        """The stream ended with its terminal event; `usage` is what the call is billed."""
        self._permit.success()
        ledger.tried(
            self.candidate, Outcome.SUCCESS, started=self.started, first_token_at=self.first_at
        )
        ledger.bill(self.candidate, usage)

    def failed(self, ledger: AttemptLedger, error: ProviderError) -> None:
        self._permit.failure(error)
        ledger.tried(
            self.candidate,
            Outcome.INTERRUPTED,
            started=self.started,
            first_token_at=self.first_at,
            error=error,
        )

    def abandoned(self, ledger: AttemptLedger, note: str) -> None:
        """The caller's deadline ended the stream: neither the endpoint's fault nor a success."""
        self._permit.release()
        ledger.tried(
            self.candidate,
            Outcome.INTERRUPTED,
            started=self.started,
            first_token_at=self.first_at,
            note=note,
        )

    async def __aenter__(self) -> StreamLeg:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._watch.close()
        try:
            await close_stream(self._stream)
        finally:
            self._permit.release()
