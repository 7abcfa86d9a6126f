"""Chat Completions replies read from their JSON, without the SDK's models.

The SDK builds a `ChatCompletionChunk` per streamed chunk by introspecting every field's
type, which costs far more than the rest of relaying a token; these readers take the
parsed JSON (`providers.sse.loads`) and read only the fields the router uses. They read
what the SDK's models would have given: absent and null are the same, an unknown field is
ignored, a chunk without `choices` has none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from modelrouter_server.domain import (
    FinishReason,
    Refusal,
    RefusalChunk,
    StreamEvent,
    TextChunk,
    ToolCallChunk,
    Usage,
)
from modelrouter_server.providers.continuation import EchoedWhitespaceFilter
from modelrouter_server.providers.finish_reasons import OPENAI_FINISH_REASONS, finish_reason
from modelrouter_server.providers.tool_wire import ToolCallAssembly

Json = Mapping[str, Any]


def mapping(value: object) -> Json:
    """`value` when it is a JSON object, else an empty one (null, absent, or malformed)."""
    return value if isinstance(value, Mapping) else {}


def text_field(value: object) -> str | None:
    return value if isinstance(value, str) else None


def usage_of(raw: object) -> Usage | None:
    """The domain's usage from a `usage` object; None when the reply carried none."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    completion_details = mapping(raw.get("completion_tokens_details"))
    prompt_details = mapping(raw.get("prompt_tokens_details"))
    return Usage(
        # prompt_tokens already includes the cached tokens, as the domain's input does.
        input_tokens=raw.get("prompt_tokens") or 0,
        output_tokens=raw.get("completion_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
        cache_read_tokens=prompt_details.get("cached_tokens") or 0,
        cache_write_tokens=prompt_details.get("cache_write_tokens") or 0,
    )


def refusal_of(text: str | None) -> Refusal | None:
    """The refusal, when the message carried one (`refusal` set, even to "")."""
    return None if text is None else Refusal(text=text)


def openai_finish_reason(reason: str | None, refusal: Refusal | None) -> FinishReason:
    mapped = finish_reason("openai", OPENAI_FINISH_REASONS, reason)
    # OpenAI ends a refusal with "stop"; the refusal field is what says it refused.
    if refusal is not None and mapped is FinishReason.STOP:
        return FinishReason.REFUSAL
    return mapped


class StreamedAnswer:
    """What one streamed answer has said so far, fed chunk by chunk."""

    __slots__ = (
        "_echo",
        "provider_model",
        "raw_reason",
        "refused",
        "tools",
        "usage",
        "visible_text",
    )

    def __init__(self, echo: EchoedWhitespaceFilter) -> None:
        self._echo = echo
        self.raw_reason: str | None = None
        self.usage: Json | None = None
        self.provider_model = ""
        # Only whether any text other than whitespace came (for `finish_detail`), not the
        # text itself: the chain keeps what was relayed, and a second copy here was what
        # a stream whose client stopped reading held twice.
        self.visible_text = False
        self.refused: list[str] | None = None
        self.tools = ToolCallAssembly()

    def feed(self, chunk: Json) -> Iterator[StreamEvent]:
        """The events one parsed chunk carries, in the order the caller sees them."""
        self.provider_model = chunk.get("model") or self.provider_model
        # With include_usage the last chunk has no choices and the whole usage;
        # some compatible servers put it on the last choice chunk instead.
        usage = chunk.get("usage")
        if isinstance(usage, Mapping) and usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            delta = mapping(choice.get("delta"))
            content = delta.get("content")
            if content and (piece := self._echo.feed(content)):
                self.visible_text = self.visible_text or not piece.isspace()
                yield TextChunk(piece)
            # The first refusal chunk carries "": it already marks the answer.
            refusal = delta.get("refusal")
            if refusal is not None:
                if self.refused is None:
                    self.refused = []
                if refusal:
                    self.refused.append(refusal)
                    yield RefusalChunk(refusal)
            calls = delta.get("tool_calls")
            if calls:
                yield from self._tool_pieces(calls)
            self.raw_reason = choice.get("finish_reason") or self.raw_reason

    def _tool_pieces(self, calls: Sequence[Json]) -> Iterator[ToolCallChunk]:
        for call in calls:
            function = mapping(call.get("function"))
            piece = ToolCallChunk(
                call.get("index") or 0,
                id=call.get("id") or "",
                name=function.get("name") or "",
                arguments_json=function.get("arguments") or "",
            )
            self.tools.add(piece.index, id=piece.id, name=piece.name, fragment=piece.arguments_json)
            if piece.id or piece.name or piece.arguments_json:
                yield piece
