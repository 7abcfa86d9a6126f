"""What one finished RPC was: the one record both its log line and its metrics come from.

The error boundary builds a `RequestSummary` when an RPC ends, however it ends, from
what it measured (status, latency, time to first token) and what the handler reported
about the answer (`Answer`). Only domain types here: nothing reads the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from modelrouter_server.attempts import AttemptRecord, Outcome
from modelrouter_server.domain import FinishReason, Refusal, Usage


@dataclass(frozen=True, slots=True)
class Answer:
    """Who answered a request and what it took, as the handler reports it. A replayed
    turn (its answer was already stored) names no model: nothing was called."""

    model: str = ""
    provider: str = ""
    attempts: tuple[AttemptRecord, ...] = ()
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    fallback: bool = False
    resumed: bool = False
    finish_reason: FinishReason | None = None
    """Why the answer ended (None for RPCs that do not generate)."""
    refusal: Refusal | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One finished RPC. `code` is how it ended (CANCELLED when the caller went away);
    `attempts` are every upstream try and skip, also of a request that failed."""

    rpc: str
    code: grpc.StatusCode
    latency_s: float
    request_id: str = ""
    model: str = ""
    provider: str = ""
    attempts: tuple[AttemptRecord, ...] = ()
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    ttft_s: float | None = None
    fallback: bool = False
    resumed: bool = False
    finish_reason: FinishReason | None = None
    refusal: Refusal | None = None
    replayed: bool = False
    error: str = ""
    """The message the caller was sent, for a failure."""

    @classmethod
    def of(
        cls,
        rpc: str,
        code: grpc.StatusCode,
        latency_s: float,
        *,
        request_id: str = "",
        answer: Answer | None = None,
        attempts: tuple[AttemptRecord, ...] = (),
        ttft_s: float | None = None,
        error: str = "",
    ) -> RequestSummary:
        """The summary of an RPC from what the boundary measured and the handler's answer
        (its attempts win over `attempts`, which a failure carries)."""
        if answer is None:
            return cls(
                rpc, code, latency_s, request_id, attempts=attempts, ttft_s=ttft_s, error=error
            )
        return cls(
            rpc,
            code,
            latency_s,
            request_id,
            model=answer.model,
            provider=answer.provider,
            attempts=answer.attempts or attempts,
            usage=answer.usage,
            cost_usd=answer.cost_usd,
            ttft_s=ttft_s,
            fallback=answer.fallback,
            resumed=answer.resumed,
            finish_reason=answer.finish_reason,
            refusal=answer.refusal,
            replayed=answer.replayed,
            error=error,
        )

    def retries(self) -> list[bool]:
        """For each attempt, whether it repeated a failed try on the same model."""
        out: list[bool] = []
        previous: AttemptRecord | None = None
        for attempt in self.attempts:
            out.append(
                previous is not None
                and previous.outcome is Outcome.ERROR
                and (previous.model, previous.provider) == (attempt.model, attempt.provider)
            )
            previous = attempt
        return out

    def log_fields(self) -> dict[str, object]:
        """The fields of the RPC's one log line."""
        fields: dict[str, object] = {
            "rpc": self.rpc,
            "code": self.code.name,
            "request_id": self.request_id,
            "latency_ms": round(self.latency_s * 1000, 1),
        }
        if self.model:
            fields.update(model=self.model, provider=self.provider)
        if self.attempts or self.finish_reason is not None:
            fields.update(
                fallback=self.fallback,
                resumed=self.resumed,
                input_tokens=self.usage.input_tokens,
                output_tokens=self.usage.output_tokens,
                usage_method=self.usage.method.value,
                cost_usd=round(self.cost_usd, 6),
            )
        if self.finish_reason is not None:
            fields.update(
                finish_reason=self.finish_reason.value,
                refusal=self.refusal is not None,
                refusal_category=self.refusal.category if self.refusal else None,
            )
        if self.replayed:
            fields["replayed"] = True
        if self.attempts:
            fields["attempts"] = len(self.attempts)
        if self.ttft_s is not None:
            fields["ttft_ms"] = round(self.ttft_s * 1000, 1)
        if self.error:
            fields["error"] = self.error
        return fields
