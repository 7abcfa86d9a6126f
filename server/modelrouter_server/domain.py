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
    TOOL = "tool"
    """Results of the tool calls in the assistant message before it."""


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
    """Why an answer ended. Each provider maps every stop reason it documents to one of
    these in its own table; a reason it does not know becomes UNKNOWN, never a guess."""

    STOP = "stop"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_CALL = "tool_call"
    CONTENT_FILTER = "content_filter"
    CONTEXT_WINDOW = "context_window"
    REFUSAL = "refusal"
    """The model declined to answer (OpenAI `refusal`, Anthropic `stop_reason: refusal`)."""
    PAUSED = "paused"
    """Anthropic `pause_turn`: a long turn was paused; sending the reply back resumes it."""
    UNKNOWN = "unknown"


class CountMethod(enum.Enum):
    """How a token count was made (mirrors `modelrouter.v1.CountMethod`).

    Listed from most to least exact: a sum of counts is only as exact as its least exact
    part (see `Usage.__add__`).
    """

    PROVIDER = "provider"
    """The provider's own figure (its counting endpoint, or the usage it billed)."""
    EXACT_LOCAL = "exact_local"
    """The model's own tokenizer, offline (tiktoken)."""
    ESTIMATE = "estimate"
    """A calibrated local estimate with a safety margin."""


_EXACTNESS = {CountMethod.PROVIDER: 0, CountMethod.EXACT_LOCAL: 1, CountMethod.ESTIMATE: 2}


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image: encoded `data` with its `media_type`, or a `url` the provider fetches."""

    data: bytes = b""
    media_type: str = ""
    url: str = ""
    detail: str = "auto"
    """OpenAI's detail level: low, high or auto."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks for. `arguments` is a JSON object (parsed)."""

    id: str
    name: str
    arguments: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the caller's tool returned for the call `tool_call_id`."""

    tool_call_id: str
    content: str
    is_error: bool = False


Part = TextPart | ImagePart | ToolCall | ToolResult
"""One piece of a message's content beyond its plain `content` string."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message. `content` is the simple path; `parts` holds what plain text cannot
    (images, tool calls, tool results) and follows `content`."""

    role: Role
    content: str
    pinned: bool = False
    importance: Importance = Importance.NORMAL
    parts: tuple[Part, ...] = ()

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolCall))

    @property
    def tool_results(self) -> tuple[ToolResult, ...]:
        return tuple(p for p in self.parts if isinstance(p, ToolResult))

    def all_parts(self) -> tuple[Part, ...]:
        """`content` (as a text part, when set) followed by `parts`."""
        return ((TextPart(self.content),) if self.content else ()) + self.parts

    def plain_text(self) -> str:
        """Every text part, joined: what a provider without parts would be sent."""
        return "\n\n".join(p.text for p in self.all_parts() if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call; `input_schema` is a JSON Schema object."""

    name: str
    description: str = ""
    input_schema: Mapping[str, object] = field(default_factory=dict)


class ToolChoiceMode(enum.Enum):
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode = ToolChoiceMode.AUTO
    name: str = ""
    """The tool to call when `mode` is TOOL."""


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """The tools of a request and how the model may use them (empty: no tools)."""

    tools: tuple[Tool, ...] = ()
    choice: ToolChoice = ToolChoice()
    parallel: bool | None = None
    """None: the provider's default (parallel calls allowed)."""


NO_TOOLS = ToolSettings()


class ResponseFormatType(enum.Enum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


DEFAULT_FORMAT_NAME = "json_response"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """What the reply's text must be: free text, a JSON object, or JSON valid against
    `schema`. `strict` asks the provider to enforce the schema where it can."""

    type: ResponseFormatType = ResponseFormatType.TEXT
    schema: Mapping[str, object] = field(default_factory=dict)
    name: str = DEFAULT_FORMAT_NAME
    strict: bool = False

    @property
    def is_json(self) -> bool:
        return self.type is not ResponseFormatType.TEXT

    def json_schema(self) -> Mapping[str, object]:
        """The schema a JSON reply must match (any object for JSON_OBJECT)."""
        if self.type is ResponseFormatType.JSON_SCHEMA:
            return self.schema
        return {"type": "object"}


TEXT_FORMAT = ResponseFormat()


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens billed for a call, and how they were counted (`method`): the provider's
    figures when it sent them, else the router's own count of the input and the output."""

    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    method: CountMethod = CountMethod.PROVIDER

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            method=max(self.method, other.method, key=_EXACTNESS.__getitem__),
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """The model declined to answer.

    `text` is the refusal in the model's words: OpenAI sends it apart from the content
    (`refusal`); Anthropic marks the whole answer with `stop_reason: refusal`, so there it
    is the answer text, possibly empty. `category` and `explanation` come from Anthropic's
    `stop_details` when the API sends them.
    """

    text: str = ""
    category: str = ""
    explanation: str = ""


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
    tools: ToolSettings = NO_TOOLS
    response_format: ResponseFormat = TEXT_FORMAT
    prompt_cache: bool = False
    """Mark the stable prefix for the provider's prompt cache (where it is explicit)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A complete reply from one provider call.

    `usage` is None when the provider sent none (the fallback chain then counts it);
    `provider_model` is the model the provider says answered (e.g. a dated snapshot);
    `finish_detail` explains a finish the reason alone would leave puzzling.
    """

    text: str
    finish_reason: FinishReason
    usage: Usage | None
    thinking: str = ""
    refusal: Refusal | None = None
    provider_model: str = ""
    finish_detail: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingChunk:
    text: str


@dataclass(frozen=True, slots=True)
class RefusalChunk:
    """A piece of refusal text (OpenAI streams it apart from the content)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    """A piece of tool call number `index`: its first piece has `id` and `name`, later
    ones a fragment of the arguments' JSON text."""

    index: int
    id: str = ""
    name: str = ""
    arguments_json: str = ""

    @property
    def text(self) -> str:
        """What the piece adds to the output (for counting what a cut stream billed)."""
        return self.name + self.arguments_json


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The provider's terminal event arrived: the answer is complete.

    The fields mean what they mean on `Completion`; `refusal.text` holds the whole
    refusal, which was also streamed as `RefusalChunk`s (OpenAI) or `TextChunk`s
    (Anthropic).
    """

    finish_reason: FinishReason
    usage: Usage | None
    refusal: Refusal | None = None
    provider_model: str = ""
    finish_detail: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


StreamEvent = TextChunk | ThinkingChunk | RefusalChunk | ToolCallChunk | StreamEnd
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
    tenant: str = ""
    """The caller's tenant, set at the edge from its API key (empty: no tenant checks)."""
    tools: ToolSettings = NO_TOOLS
    response_format: ResponseFormat = TEXT_FORMAT

    @property
    def uses_images(self) -> bool:
        return any(isinstance(p, ImagePart) for m in self.messages for p in m.parts)

    @property
    def uses_tools(self) -> bool:
        """Tools offered, or tool calls or results in the messages: only models with the
        tools capability can serve it."""
        return bool(self.tools.tools) or any(m.tool_calls or m.tool_results for m in self.messages)


@dataclass(frozen=True, slots=True)
class ContextReport:
    """What context management did to fit a request into the serving model's window."""

    history_tokens: int = 0
    sent_tokens: int = 0
    summarized_messages: int = 0
    pruned_messages: int = 0
    budget_tokens: int = 0
