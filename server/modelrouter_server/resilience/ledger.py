"""The record of one request's trip through the fallback chain.

Every upstream try and every skipped candidate becomes an `AttemptRecord`, in order, after
the router's own skips; usage and cost are summed over the tries that reported usage. When
the chain runs out of candidates the ledger writes the error a person can act on: which
models were tried and why each one failed.
"""

from __future__ import annotations

import dataclasses

from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome
from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.domain import Usage
from modelrouter_server.error_facts import facts_for
from modelrouter_server.errors import (
    DeadlineExceeded,
    ProviderError,
    RouterError,
    StreamInterrupted,
)
from modelrouter_server.pricing import cost_usd
from modelrouter_server.resilience.retry import RetryStopped, StopReason
from modelrouter_server.resilience.timing import Clock

_MAX_DETAIL = 200
"""Characters of an upstream error message kept in a record (they can be long)."""


def describe_error(error: ProviderError) -> str:
    """A short phrase for a failed call, e.g. "rate limited (retry after 2.0s)": the
    class's phrase from `error_facts.FACTS`, with the HTTP status and wait it reported."""
    phrase = facts_for(error).phrase
    if error.status_code is not None and not isinstance(error, StreamInterrupted):
        phrase += f" (HTTP {error.status_code})"
    if error.retry_after_s is not None:
        phrase += f" (retry after {error.retry_after_s:.1f}s)"
    return phrase


_STOP_NOTES = {
    StopReason.EXHAUSTED: "gave up after {tries} tries",
    StopReason.RETRY_AFTER_TOO_LONG: "retry-after above max_retry_after_s",
    StopReason.DEADLINE: "waiting longer would pass the deadline",
    StopReason.FIRST_TOKEN_TIMEOUT: "no first token in time",
}


class AttemptLedger:
    """Attempts, usage and cost for one request; the failure message when all fail."""

    def __init__(self, plan: RoutePlan, clock: Clock) -> None:
        self._clock = clock
        self._records: list[AttemptRecord] = list(plan.skipped)
        # The last reason each model failed or was skipped, for the summary.
        self._reasons: dict[str, str] = {r.model: r.error for r in plan.skipped}
        self._tries: dict[str, int] = {}
        self.usage = Usage()
        self.cost_usd = 0.0
        self.deadline_cut = False
        """A retry or candidate was given up because the deadline was too near."""

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        return tuple(self._records)

    def tries(self, candidate: Candidate) -> int:
        return self._tries.get(candidate.model_id, 0)

    def skip(self, candidate: Candidate, outcome: Outcome, reason: str) -> None:
        self._records.append(
            AttemptRecord(
                model=candidate.model_id,
                provider=candidate.provider,
                outcome=outcome,
                error=reason,
            )
        )
        self._reasons[candidate.model_id] = reason

    def tried(
        self,
        candidate: Candidate,
        outcome: Outcome,
        *,
        started: float,
        first_token_at: float | None = None,
        error: ProviderError | None = None,
        note: str = "",
    ) -> None:
        """Record one upstream try that ended now."""
        now = self._clock()
        text = note
        if error is not None:
            text = describe_error(error)
            detail = error.message[:_MAX_DETAIL]
            if detail:
                text += f": {detail}"
            self._reasons[candidate.model_id] = describe_error(error)
        elif note:
            self._reasons[candidate.model_id] = note
        self._tries[candidate.model_id] = self.tries(candidate) + 1
        self._records.append(
            AttemptRecord(
                model=candidate.model_id,
                provider=candidate.provider,
                outcome=outcome,
                error=text,
                error_class=type(error) if error is not None else None,
                latency_ms=(now - started) * 1000.0,
                ttft_ms=0.0 if first_token_at is None else (first_token_at - started) * 1000.0,
                retry_after_s=error.retry_after_s if error is not None else None,
            )
        )

    def gave_up(self, candidate: Candidate, stop: RetryStopped) -> None:
        """Note why the retry loop left `candidate` (shown in the failure summary)."""
        if stop.reason is StopReason.DEADLINE:
            self.deadline_cut = True
        note = _STOP_NOTES.get(stop.reason)
        if note is not None:
            reason = self._reasons.get(candidate.model_id, describe_error(stop.error))
            self._reasons[candidate.model_id] = f"{reason}, {note.format(tries=stop.tries)}"

    def refused(self, candidate: Candidate) -> None:
        """Mark `candidate`'s successful try, the last record, as a refusal passed over."""
        last = self._records[-1]
        assert last.model == candidate.model_id and last.outcome is Outcome.SUCCESS
        self._records[-1] = dataclasses.replace(last, outcome=Outcome.REFUSED, error="refused")
        self._reasons[candidate.model_id] = "refused"

    def bill(self, candidate: Candidate, usage: Usage) -> None:
        self.usage = self.usage + usage
        self.cost_usd += cost_usd(candidate.config.pricing, usage)

    def summary(self) -> str:
        """ "gpt-4o-mini: rate limited (retry after 2.0s); claude-3-7-sonnet: circuit open" """
        return "; ".join(f"{model}: {reason}" for model, reason in self._reasons.items())

    def failure(self, *, deadline_passed: bool, context: str = "") -> RouterError:
        """The error to raise when no candidate answered.

        `DeadlineExceeded` when the caller's deadline ended the search (it passed, or a
        retry was given up because it was too near, unless every try was rate limited),
        else `NoCandidates` with every attempt. `context` prefixes the message (e.g. where
        a stream broke).
        """
        count = len(self._reasons)
        prefix = f"{context}: " if context else ""
        if count == 0:
            failed = NoCandidates(f"{prefix}no candidate to try", self._records)
        else:
            noun = "candidate" if count == 1 else f"{count} candidates"
            verb = "the" if count == 1 else "all"
            failed = NoCandidates(f"{prefix}{verb} {noun} failed: {self.summary()}", self._records)
        # When every provider asked us to wait past the deadline, "rate limited, retry
        # after N s" (RESOURCE_EXHAUSTED with RetryInfo) tells the caller more than a
        # deadline error would, and the deadline has not actually passed.
        if deadline_passed or (self.deadline_cut and not failed.all_rate_limited):
            return DeadlineExceeded(
                f"{prefix}deadline exceeded after {sum(self._tries.values())} upstream "
                f"tries: {self.summary()}"
            )
        return failed
