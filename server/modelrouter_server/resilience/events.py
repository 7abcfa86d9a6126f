"""What the fallback chain returns: one result for a unary call, events for a stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from modelrouter_server.attempts import AttemptRecord
from modelrouter_server.candidates import Candidate
from modelrouter_server.domain import (
    Completion,
    FinishReason,
    ProviderRequest,
    Refusal,
    RefusalChunk,
    TextChunk,
    ThinkingChunk,
    ToolCall,
    ToolCallChunk,
    Usage,
)

RequestBuilder = Callable[[Candidate, float | None], Awaitable[ProviderRequest]]
"""(candidate, seconds left before the deadline) -> the request for that candidate.

Called once per candidate the chain reaches, so the context manager fits the history to
the model that will actually serve it; it may raise `ContextWindowExceeded` to skip it.
"""


@dataclass(frozen=True, slots=True)
class ChainResult:
    """A unary answer and how it was obtained.

    `usage` and `cost_usd` sum every attempt the providers reported usage for (the answer
    and nothing else, as failed calls report none); `fallback` is True when a candidate
    other than the plan's first answered.
    """

    completion: Completion
    candidate: Candidate
    attempts: tuple[AttemptRecord, ...]
    fallback: bool
    usage: Usage
    cost_usd: float


@dataclass(frozen=True, slots=True)
class ChainStarted:
    """The first candidate to stream is chosen; chunks follow."""

    candidate: Candidate


@dataclass(frozen=True, slots=True)
class ChainResumed:
    """The stream broke after `at_char` characters of text and continues on `candidate`.

    The chunks that follow carry only the new text, so the client's text stays one
    unbroken answer.
    """

    candidate: Candidate
    at_char: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChainFinished:
    """The answer is complete. Always the last event of a stream that did not raise."""

    finish_reason: FinishReason
    usage: Usage
    cost_usd: float
    attempts: tuple[AttemptRecord, ...]
    candidate: Candidate
    fallback: bool
    resumed_at_chars: tuple[int, ...] = ()
    refusal: Refusal | None = None
    provider_model: str = ""
    finish_detail: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    text: str = field(default="", repr=False, compare=False)
    """The answer's text as relayed, every leg's: the chain keeps it for resuming, so the
    caller storing the turn need not keep a copy of its own."""


ChainEvent = (
    ChainStarted
    | TextChunk
    | ThinkingChunk
    | RefusalChunk
    | ToolCallChunk
    | ChainResumed
    | ChainFinished
)
"""A streamed chain yields ChainStarted, then chunks (with ChainResumed between legs), then
ChainFinished, or raises."""
