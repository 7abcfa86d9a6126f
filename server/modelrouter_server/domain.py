"""Provider-neutral request, reply and stream-event types.

Every stage (router, context manager, fallback chain, provider) speaks these types, so the
gRPC layer converts protobuf once at the edge and no stage depends on generated code.
All are frozen: a stage that needs a variant builds a new value with `dataclasses.replace`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Role(enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class Importance(enum.IntEnum):
    """Pruning order: lower values are dropped first."""

    LOW = 1
    NORMAL = 2
    HIGH = 3


class Task(enum.Enum):
    UNSPECIFIED = "unspecified"
    CHAT = "chat"
    REASONING = "reasoning"
    CODE = "code"
    SUMMARIZE = "summarize"
    EXTRACT = "extract"


class ReasoningEffort(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class FinishReason(enum.Enum):
    STOP = "stop"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_CALL = "tool_call"
    CONTENT_FILTER = "content_filter"
    CONTEXT_WINDOW = "context_window"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    pinned: bool = False
    importance: Importance = Importance.NORMAL


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One call to one concrete model, as the provider layer receives it.

    `messages` may start with system messages; each provider places them where its API
    wants them. A trailing assistant message asks the model to continue that text.
    `timeout_s` is the time left before the caller's deadline (None: no deadline).
    """

    model: str
    messages: tuple[Message, ...]
    max_output_tokens: int
    temperature: float | None = None
    reasoning_effort: ReasoningEffort | None = None
    thinking_budget_tokens: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Completion:
    """A complete reply from one provider call."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    thinking: str = ""


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingChunk:
    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The provider's terminal event arrived: the answer is complete."""

    finish_reason: FinishReason
    usage: Usage


StreamEvent = TextChunk | ThinkingChunk | StreamEnd
"""What every provider's stream yields: chunks, then exactly one StreamEnd."""


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """The caller's request after validation at the API edge (model not yet chosen)."""

    messages: tuple[Message, ...]
    model: str = ""
    task: Task = Task.UNSPECIFIED
    max_output_tokens: int = 0
    temperature: float | None = None
    reasoning_effort: ReasoningEffort | None = None
    thinking_budget_tokens: int = 0
    stop: tuple[str, ...] = ()
    request_id: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    disable_fallback: bool = False
    max_cost_usd: float = 0.0
    conversation_id: str = ""


@dataclass(frozen=True, slots=True)
class ContextReport:
    """What context management did to fit a request into the serving model's window."""

    history_tokens: int = 0
    sent_tokens: int = 0
    summarized_messages: int = 0
    pruned_messages: int = 0
    budget_tokens: int = 0
