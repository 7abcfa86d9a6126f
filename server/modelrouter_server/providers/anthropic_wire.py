"""Messages API replies read from their JSON, without the SDK's models.

As for OpenAI (`providers.openai_wire`), building the SDK's event models costs more than
the rest of relaying a token, so streamed events and unary messages are read from the
parsed JSON. The readers see what the SDK's models (built without validation) would have
given: absent and null are the same, unknown fields and event types are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelrouter_server.domain import (
    FinishReason,
    Refusal,
    StreamEnd,
    TextChunk,
    ThinkingChunk,
    ToolCallChunk,
    Usage,
)
from modelrouter_server.providers.continuation import EchoedWhitespaceFilter
from modelrouter_server.providers.finish_reasons import (
    ANTHROPIC_STOP_REASONS,
    finish_detail,
    finish_reason,
)
from modelrouter_server.providers.openai_wire import mapping
from modelrouter_server.providers.tool_wire import ToolCallAssembly
from modelrouter_server.text_buffer import TextBuffer

Json = Mapping[str, Any]


def anthropic_finish_reason(stop_reason: str | None) -> FinishReason:
    return finish_reason("anthropic", ANTHROPIC_STOP_REASONS, stop_reason)


def refusal_of(reason: FinishReason, text: str, details: object) -> Refusal | None:
    """The refusal, when the answer is one: Anthropic marks the whole message, so its
    text (possibly empty) is the refusal's; `details` is the `stop_details` object."""
    if reason is not FinishReason.REFUSAL:
        return None
    found = mapping(details)
    return Refusal(
        text=text,
        category=found.get("category") or "",
        explanation=found.get("explanation") or "",
    )


class UsageTally:
    """Token counts as the Messages API reports them: the start of a stream carries the
    input side, each `message_delta` the cumulative output (and, on newer APIs, input)."""

    __slots__ = (
        "cache_read_tokens",
        "cache_write_tokens",
        "input_tokens",
        "output_tokens",
        "reported",
        "thinking_tokens",
    )

    def __init__(self) -> None:
        self.reported = False
        self.input_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.output_tokens = 0
        self.thinking_tokens = 0

    @classmethod
    def of(cls, usage: object, *, final: bool) -> UsageTally:
        """A tally from a message's `usage`. In a stream (`final` False) the start's output
        count is a placeholder: the usage counts as reported once a delta confirms it."""
        tally = cls()
        if not isinstance(usage, Mapping):
            return tally
        tally.reported = final
        tally.input_tokens = usage.get("input_tokens") or 0
        tally.cache_read_tokens = usage.get("cache_read_input_tokens") or 0
        tally.cache_write_tokens = usage.get("cache_creation_input_tokens") or 0
        tally.output_tokens = usage.get("output_tokens") or 0
        details = usage.get("output_tokens_details")
        if isinstance(details, Mapping):
            tally.thinking_tokens = details.get("thinking_tokens") or 0
        return tally

    def add_delta(self, usage: object) -> None:
        if not isinstance(usage, Mapping):
            return
        self.reported = True
        self.output_tokens = usage.get("output_tokens") or 0
        if (input_tokens := usage.get("input_tokens")) is not None:
            self.input_tokens = input_tokens
        if (cache_read := usage.get("cache_read_input_tokens")) is not None:
            self.cache_read_tokens = cache_read
        if (cache_write := usage.get("cache_creation_input_tokens")) is not None:
            self.cache_write_tokens = cache_write
        details = usage.get("output_tokens_details")
        if isinstance(details, Mapping):
            self.thinking_tokens = details.get("thinking_tokens") or 0

    def usage(self) -> Usage | None:
        if not self.reported:
            return None
        # Anthropic's input_tokens leaves out cached tokens; the domain's includes them
        # (pricing subtracts them back out at their own rates).
        return Usage(
            input_tokens=self.input_tokens + self.cache_read_tokens + self.cache_write_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=self.thinking_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
        )


class StreamReading:
    """What one Messages stream has said so far: its text, usage, stop reason and model."""

    def __init__(self, echo: EchoedWhitespaceFilter, *, format_tool: str | None = None) -> None:
        self.echo = echo
        self.format_tool = format_tool
        self.answer_blocks: set[int] = set()
        """Blocks of the structured-output tool: their input is streamed as the text."""
        self.tally = UsageTally()
        self.stop_reason: str | None = None
        self.stop_details: object = None
        self.provider_model = ""
        self.text = TextBuffer()
        self.thought = False
        self.tools = ToolCallAssembly()
        self.tool_blocks: dict[int, int] = {}
        """Content block index -> tool call index (0, 1, ... in the message)."""
        self.stopped = False
        """`message_stop` arrived: the answer is complete; what follows is not waited for."""

    def on_event(self, event: Json) -> TextChunk | ThinkingChunk | ToolCallChunk | None:
        """Note one parsed SSE event; the chunk to pass on, if it carries one."""
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._on_delta(event.get("index"), mapping(event.get("delta")))
        if kind == "content_block_start":
            return self._on_block(event.get("index"), mapping(event.get("content_block")))
        if kind == "message_start":
            message = mapping(event.get("message"))
            self.provider_model = message.get("model") or ""
            self.tally = UsageTally.of(message.get("usage"), final=False)
        elif kind == "message_delta":
            delta = mapping(event.get("delta"))
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_details = delta.get("stop_details") or self.stop_details
            self.tally.add_delta(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        return None

    def _on_block(self, index: object, block: Json) -> ToolCallChunk | None:
        if block.get("type") != "tool_use" or not isinstance(index, int):
            return None
        name = block.get("name") or ""
        if name == self.format_tool:
            self.answer_blocks.add(index)
            return None
        call, call_id = len(self.tool_blocks), block.get("id") or ""
        self.tool_blocks[index] = call
        self.tools.add(call, id=call_id, name=name)
        return ToolCallChunk(call, id=call_id, name=name)

    def _on_delta(
        self, index: object, delta: Json
    ) -> TextChunk | ThinkingChunk | ToolCallChunk | None:
        kind = delta.get("type")
        if kind == "text_delta":
            # With structured output, text beside the answer tool is preamble, not answer.
            if self.format_tool is not None:
                return None
            if piece := self.echo.feed(delta.get("text") or ""):
                self.text.append(piece)
                return TextChunk(piece)
        elif kind == "input_json_delta":
            fragment = delta.get("partial_json") or ""
            if index in self.answer_blocks:
                if not fragment:
                    return None
                self.text.append(fragment)
                return TextChunk(fragment)
            call = self.tool_blocks.get(index) if isinstance(index, int) else None
            if call is None or not fragment:
                return None
            self.tools.add(call, fragment=fragment)
            return ToolCallChunk(call, arguments_json=fragment)
        elif kind == "thinking_delta" and (thinking := delta.get("thinking")):
            self.thought = True
            return ThinkingChunk(thinking)
        return None

    def end(self) -> StreamEnd:
        reason = anthropic_finish_reason(self.stop_reason)
        if self.answer_blocks and not self.tools and reason is FinishReason.TOOL_CALL:
            reason = FinishReason.STOP
        answer = str(self.text)
        usage = self.tally.usage()
        return StreamEnd(
            reason,
            usage,
            refusal=refusal_of(reason, answer, self.stop_details),
            provider_model=self.provider_model,
            finish_detail=finish_detail(reason, bool(answer.strip()), usage, thought=self.thought),
            tool_calls=self.tools.calls(),
        )
