"""Anthropic's Messages API through `anthropic.AsyncAnthropic`."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import cast

import anthropic
import httpx2
from anthropic.types import (
    CacheControlEphemeralParam,
    ContentBlockParam,
    InputJSONDelta,
    MessageDeltaUsage,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    RefusalStopDetails,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingConfigEnabledParam,
    ThinkingDelta,
    ToolChoiceParam,
    ToolParam,
    ToolUseBlock,
)
from anthropic.types import Usage as AnthropicUsage
from anthropic.types.message_create_params import MessageCreateParamsBase

from modelrouter_server.domain import (
    Completion,
    FinishReason,
    ImagePart,
    Message,
    ProviderRequest,
    Refusal,
    ResponseFormat,
    Role,
    StreamEnd,
    StreamEvent,
    TextChunk,
    TextPart,
    ThinkingChunk,
    ToolCall,
    ToolCallChunk,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
    Usage,
)
from modelrouter_server.errors import InterruptionKind, ProviderError
from modelrouter_server.providers.connection import Connection
from modelrouter_server.providers.continuation import (
    EchoedWhitespaceFilter,
    strip_partial_answer,
)
from modelrouter_server.providers.finish_reasons import (
    ANTHROPIC_STOP_REASONS,
    finish_detail,
    finish_reason,
)
from modelrouter_server.providers.pool import PoolWatch
from modelrouter_server.providers.tool_wire import (
    MalformedToolCall,
    ToolCallAssembly,
    anthropic_tool_id,
    arguments_json,
)
from modelrouter_server.providers.upstream_errors import (
    HttpFailure,
    UpstreamErrors,
    transport_detail,
)

# Anthropic gives the context-window error no type or code of its own: it is an
# invalid_request_error whose message starts "prompt is too long: N tokens > M maximum".
# The start of that message is the only signal, so it is matched there and nowhere else.
_PROMPT_TOO_LONG = "prompt is too long"

# Spend caps: retrying cannot help until someone raises the cap or the period turns.
_QUOTA_ERROR_CODES = frozenset({"contract_spend_limit_reached", "enforced_spend_limit_reached"})

_SDK_FAILURES = (anthropic.APIError, httpx2.RequestError)

# Counting is quick, and the caller has a local estimate to fall back on: a slow count
# endpoint must not hold a request for the provider's whole call timeout.
_COUNT_TOKENS_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class _Call:
    """One request in the SDK's terms."""

    params: MessageCreateParamsBase
    extra_body: dict[str, object] | None
    stripped_prefill: str
    """Whitespace removed from the end of a trailing assistant message."""
    format_tool: str | None = None
    """The tool that carries structured output, when the request asks for JSON."""


class AnthropicProvider:
    """`Provider` over the Messages API (or the emulator's stand-in for it)."""

    def __init__(self, name: str, connection: Connection, *, emulated: bool = False) -> None:
        self._name = name
        self._emulated = emulated
        self._connection = connection
        self._pool = PoolWatch(
            name, connection.max_connections, connection.pool_timeout_s, connection.pool_observer
        )
        self._client = anthropic.AsyncAnthropic(
            api_key=connection.api_key,
            base_url=connection.base_url,
            timeout=connection.timeout,
            # The router has the one retry loop; a second one here would multiply attempts.
            max_retries=0,
            # The SDK's default client keeps its TCP keep-alive settings; only the pool changes.
            http_client=anthropic.DefaultAsyncHttpxClient(
                timeout=connection.timeout, limits=connection.limits
            ),
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def emulated(self) -> bool:
        return self._emulated

    async def complete(self, request: ProviderRequest) -> Completion:
        call = _call(request)
        errors = self._errors(request.model)
        try:
            message = await self._client.messages.create(
                **call.params,
                extra_body=call.extra_body,
                timeout=self._connection.call_timeout(request.timeout_s),
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
        thinking = "".join(
            block.thinking for block in message.content if isinstance(block, ThinkingBlock)
        )
        text = EchoedWhitespaceFilter(call.stripped_prefill).feed(text)
        uses = [block for block in message.content if isinstance(block, ToolUseBlock)]
        answer = next((u for u in uses if u.name == call.format_tool), None)
        tool_calls = tuple(
            ToolCall(u.id, u.name, _input_object(u.input)) for u in uses if u is not answer
        )
        reason = _finish_reason(message.stop_reason)
        if answer is not None:
            # Structured output came as the forced tool's input: that is the answer.
            text = arguments_json(_input_object(answer.input))
            if not tool_calls and reason is FinishReason.TOOL_CALL:
                reason = FinishReason.STOP
        usage = _UsageTally.of(_message_usage(message), final=True).usage()
        return Completion(
            text=text,
            finish_reason=reason,
            usage=usage,
            thinking=thinking,
            refusal=_refusal(reason, text, message.stop_details),
            provider_model=message.model,
            finish_detail=finish_detail(reason, text, usage, thought=bool(thinking)),
            tool_calls=tool_calls,
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent, None]:
        call = _call(request)
        errors = self._errors(request.model)
        try:
            upstream = await self._client.messages.create(
                **call.params,
                stream=True,
                extra_body=call.extra_body,
                timeout=self._connection.call_timeout(request.timeout_s),
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        request_id = upstream.response.headers.get("request-id")
        reading = _StreamReading(
            EchoedWhitespaceFilter(call.stripped_prefill), format_tool=call.format_tool
        )
        try:
            while not reading.stopped:
                event = await _next_event(upstream, errors, request_id)
                if event is None:
                    break
                if (chunk := reading.on_event(event)) is not None:
                    yield chunk
        finally:
            # Runs on cancellation and aclose() too: closing the response closes the
            # connection, which is how the provider learns to stop generating.
            await upstream.close()
        if not reading.stopped:
            raise errors.interrupted(
                InterruptionKind.TRUNCATED,
                "the body ended before message_stop",
                request_id=request_id,
            )
        try:
            end = reading.end()
        except MalformedToolCall as exc:
            raise errors.interrupted(
                InterruptionKind.ERROR_EVENT, str(exc), request_id=request_id
            ) from exc
        yield end

    async def count_tokens(self, model: str, messages: Sequence[Message]) -> int | None:
        system, turns, _ = _conversation(messages)
        try:
            counted = await self._client.messages.count_tokens(
                model=model,
                messages=turns,
                system=system or anthropic.omit,
                timeout=self._connection.call_timeout(_COUNT_TOKENS_TIMEOUT_S),
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, self._errors(model)) from exc
        return counted.input_tokens

    async def aclose(self) -> None:
        await self._client.close()

    def _errors(self, model: str) -> UpstreamErrors:
        return UpstreamErrors(
            provider=self._name, model=model, secret=self._connection.api_key, pool=self._pool
        )


def _call(request: ProviderRequest) -> _Call:
    system, turns, stripped = _conversation(request.messages)
    params: MessageCreateParamsBase = {
        "model": request.model,
        "max_tokens": request.max_output_tokens,
        "messages": turns,
    }
    if system:
        params["system"] = system
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    fmt = request.response_format
    _add_tools(params, request.tools, fmt)
    if request.prompt_cache:
        _add_cache_breakpoints(params)
    extra_body: dict[str, object] | None = None
    prefilling = bool(turns) and turns[-1]["role"] == "assistant"
    # The API refuses thinking together with a prefilled answer, and continuing a partial
    # answer needs no fresh thinking, so a continuation runs without it.
    # Nor with structured output: the API refuses thinking while a tool use is forced.
    if request.thinking_budget_tokens and not prefilling and not fmt.is_json:
        thinking: ThinkingConfigEnabledParam = {
            "type": "enabled",
            "budget_tokens": request.thinking_budget_tokens,
        }
        params["thinking"] = thinking
    elif request.temperature is not None:
        # anthropic 2.14's create() has no temperature argument; the API still takes it.
        # With thinking on, the API requires the default temperature, so none is sent.
        extra_body = {"temperature": request.temperature}
    return _Call(
        params=params,
        extra_body=extra_body,
        stripped_prefill=stripped,
        format_tool=fmt.name if fmt.is_json else None,
    )


def _conversation(messages: Sequence[Message]) -> tuple[str, list[MessageParam], str]:
    """The system prompt, strictly alternating turns, and whitespace stripped from a prefill.

    Tool results go back as a user turn of tool_result blocks. The API layer already
    rejects a bad order; consecutive turns of one role (tool results then a user message)
    are joined, because the API would refuse them.
    """
    system = "\n\n".join(m.content for m in messages if m.role is Role.SYSTEM)
    roles: list[str] = []
    turns_parts: list[list[Message]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        if roles and roles[-1] == role:
            turns_parts[-1].append(message)
        else:
            roles.append(role)
            turns_parts.append([message])
    stripped = ""
    prefill: str | None = None
    if roles and roles[-1] == "assistant" and not any(m.parts for m in turns_parts[-1]):
        prefill, stripped = strip_partial_answer("\n\n".join(m.content for m in turns_parts[-1]))
        roles.pop()
        turns_parts.pop()
    turns: list[MessageParam] = []
    for role, group in zip(roles, turns_parts, strict=True):
        if not any(m.parts for m in group):
            content: str | list[ContentBlockParam] = "\n\n".join(m.content for m in group)
        else:
            content = [block for m in group for block in _blocks(m)]
        if role == "user":
            turns.append({"role": "user", "content": content})
        else:
            turns.append({"role": "assistant", "content": content})
    if prefill:
        turns.append({"role": "assistant", "content": prefill})
    return system, turns, stripped


def _blocks(message: Message) -> list[ContentBlockParam]:
    """A message's content as Messages API blocks, in order."""
    blocks: list[ContentBlockParam] = []
    for part in message.all_parts():
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part))
        elif isinstance(part, ToolCall):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": anthropic_tool_id(part.id),
                    "name": part.name,
                    "input": dict(part.arguments),
                }
            )
        elif isinstance(part, ToolResult):
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": anthropic_tool_id(part.tool_call_id),
                    "content": part.content,
                    "is_error": part.is_error,
                }
            )
    return blocks


def _image_block(part: ImagePart) -> ContentBlockParam:
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return cast(
        ContentBlockParam,
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": part.media_type,
                "data": base64.b64encode(part.data).decode("ascii"),
            },
        },
    )


def _add_tools(
    params: MessageCreateParamsBase, settings: ToolSettings, fmt: ResponseFormat
) -> None:
    """The request's tools and tool choice, in the Messages API's terms.

    Claude has no JSON mode: structured output is asked for as one more tool, whose
    input schema is the response schema, and whose use is forced (or, beside the
    caller's own tools, at least some tool use is). Its input is the answer.
    """
    if not settings.tools and not fmt.is_json:
        return
    tools: list[ToolParam] = []
    for tool in settings.tools:
        schema = dict(tool.input_schema) or {"type": "object", "properties": {}}
        entry = cast(ToolParam, {"name": tool.name, "input_schema": schema})
        if tool.description:
            entry["description"] = tool.description
        tools.append(entry)
    if fmt.is_json:
        answer_tool = {
            "name": fmt.name,
            "description": "Give the answer: call this with the reply as its input.",
            "input_schema": dict(fmt.json_schema()),
        }
        tools.append(cast(ToolParam, answer_tool))
    params["tools"] = tools
    choice = settings.choice
    if fmt.is_json:
        forced: dict[str, object] = (
            {"type": "any"} if settings.tools else {"type": "tool", "name": fmt.name}
        )
        params["tool_choice"] = cast(ToolChoiceParam, forced)
        return
    no_parallel = settings.parallel is False
    mapped: dict[str, object]
    if choice.mode is ToolChoiceMode.NONE:
        mapped = {"type": "none"}
    elif choice.mode is ToolChoiceMode.REQUIRED:
        mapped = {"type": "any"}
    elif choice.mode is ToolChoiceMode.TOOL:
        mapped = {"type": "tool", "name": choice.name}
    else:
        mapped = {"type": "auto"}
    if no_parallel and choice.mode is not ToolChoiceMode.NONE:
        mapped["disable_parallel_tool_use"] = True
    params["tool_choice"] = cast(ToolChoiceParam, mapped)


_EPHEMERAL: CacheControlEphemeralParam = {"type": "ephemeral"}


def _add_cache_breakpoints(params: MessageCreateParamsBase) -> None:
    """`cache_control` on the last tool, the system prompt, the history before the newest
    turn (read from the cache) and the newest turn (written for the next request): the
    four breakpoints the API allows. The prompt up to each is what the next turn of the
    conversation starts with, so it is read from the cache at a tenth of the price."""
    tools = params.get("tools")
    if tools:
        tools_list = list(tools)
        last = dict(cast(dict[str, object], tools_list[-1]))
        last["cache_control"] = _EPHEMERAL
        tools_list[-1] = cast(ToolParam, last)
        params["tools"] = tools_list
    system = params.get("system")
    if isinstance(system, str) and system:
        params["system"] = [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]
    turns = list(params["messages"])
    # A trailing assistant prefill is partial text: the prefix ends before it.
    end = len(turns) - 1 if turns and turns[-1]["role"] == "assistant" else len(turns)
    for index in (end - 2, end - 1):
        if index >= 0:
            turns[index] = _with_breakpoint(turns[index])
    params["messages"] = turns


def _with_breakpoint(turn: MessageParam) -> MessageParam:
    content = turn["content"]
    blocks: list[dict[str, object]] = (
        [{"type": "text", "text": content}]
        if isinstance(content, str)
        else [dict(cast(dict[str, object], b)) for b in content]
    )
    if not blocks:
        return turn
    blocks[-1]["cache_control"] = _EPHEMERAL
    return cast(MessageParam, {"role": turn["role"], "content": blocks})


def _input_object(raw: object) -> dict[str, object]:
    return dict(raw) if isinstance(raw, dict) else {}


async def _next_event(
    upstream: anthropic.AsyncStream[RawMessageStreamEvent],
    errors: UpstreamErrors,
    request_id: str | None,
) -> RawMessageStreamEvent | None:
    """The next event, None at the end of the body; failures become `StreamInterrupted`."""
    try:
        return await anext(upstream)
    except StopAsyncIteration:
        return None
    except anthropic.APIStatusError as exc:
        # An SSE `error` event: the SDK raises it with the 200 status of the stream.
        detail = _failure(exc).describe()
        raise errors.interrupted(
            InterruptionKind.ERROR_EVENT, detail, request_id=exc.request_id or request_id
        ) from exc
    except (anthropic.APITimeoutError, httpx2.TimeoutException) as exc:
        raise errors.interrupted(
            InterruptionKind.STALLED, transport_detail(exc), request_id=request_id
        ) from exc
    except (anthropic.APIConnectionError, httpx2.RequestError) as exc:
        # anthropic lets the transport's own error (e.g. RemoteProtocolError) through.
        raise errors.interrupted(
            InterruptionKind.DROPPED, transport_detail(exc), request_id=request_id
        ) from exc
    except (anthropic.APIError, json.JSONDecodeError) as exc:
        # An event the SDK could not read.
        raise errors.interrupted(
            InterruptionKind.ERROR_EVENT, f"malformed event: {exc}", request_id=request_id
        ) from exc


def _before_answer(
    exc: anthropic.APIError | httpx2.RequestError, errors: UpstreamErrors
) -> ProviderError:
    """The domain error for a call that failed before any answer arrived."""
    if isinstance(exc, anthropic.APIStatusError):
        quota = exc.status_code == 402 or exc.error_code in _QUOTA_ERROR_CODES
        return errors.from_status(
            _failure(exc),
            context_window=exc.status_code == 400
            and exc.type == "invalid_request_error"
            and (exc.api_message or "").startswith(_PROMPT_TOO_LONG),
            quota_exhausted=quota,
            overloaded=exc.type == "overloaded_error",
        )
    if isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        return errors.timeout(transport_detail(exc), cause=exc)
    if isinstance(exc, anthropic.APIConnectionError | httpx2.RequestError):
        return errors.connection(transport_detail(exc))
    return errors.unexpected(exc.message)


def _failure(exc: anthropic.APIStatusError) -> HttpFailure:
    return HttpFailure(
        status_code=exc.status_code,
        error_type=exc.type,
        error_code=exc.error_code,
        message=exc.api_message or "",
        request_id=exc.request_id,
        headers=exc.response.headers,
    )


def _finish_reason(stop_reason: str | None) -> FinishReason:
    return finish_reason("anthropic", ANTHROPIC_STOP_REASONS, stop_reason)


def _refusal(reason: FinishReason, text: str, details: RefusalStopDetails | None) -> Refusal | None:
    """The refusal, when the answer is one: Anthropic marks the whole message, so its
    text (possibly empty) is the refusal's."""
    if reason is not FinishReason.REFUSAL:
        return None
    return Refusal(
        text=text,
        category=(details.category or "") if details else "",
        explanation=(details.explanation or "") if details else "",
    )


# The API always sends usage, but the SDK builds its models without validation, so a
# compatible server's message or event without `usage` arrives without the attribute.


def _message_usage(message: anthropic.types.Message) -> AnthropicUsage | None:
    usage: AnthropicUsage | None = getattr(message, "usage", None)
    return usage


def _delta_usage(event: RawMessageDeltaEvent) -> MessageDeltaUsage | None:
    usage: MessageDeltaUsage | None = getattr(event, "usage", None)
    return usage


class _StreamReading:
    """What one Messages stream has said so far: its text, usage, stop reason and model."""

    def __init__(self, echo: EchoedWhitespaceFilter, *, format_tool: str | None = None) -> None:
        self.echo = echo
        self.format_tool = format_tool
        self.answer_blocks: set[int] = set()
        """Blocks of the structured-output tool: their input is streamed as the text."""
        self.tally = _UsageTally()
        self.stop_reason: str | None = None
        self.stop_details: RefusalStopDetails | None = None
        self.provider_model = ""
        self.text: list[str] = []
        self.thought = False
        self.tools = ToolCallAssembly()
        self.tool_blocks: dict[int, int] = {}
        """Content block index -> tool call index (0, 1, ... in the message)."""
        self.stopped = False
        """`message_stop` arrived: the answer is complete; what follows is not waited for."""

    def on_event(
        self, event: RawMessageStreamEvent
    ) -> TextChunk | ThinkingChunk | ToolCallChunk | None:
        """Note one SSE event; the chunk to pass on, if it carries one."""
        if isinstance(event, RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, ToolUseBlock) and block.name == self.format_tool:
                self.answer_blocks.add(event.index)
            elif isinstance(block, ToolUseBlock):
                index = len(self.tool_blocks)
                self.tool_blocks[event.index] = index
                self.tools.add(index, id=block.id, name=block.name)
                return ToolCallChunk(index, id=block.id, name=block.name)
        elif isinstance(event, RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, InputJSONDelta) and event.index in self.answer_blocks:
                if not delta.partial_json:
                    return None
                self.text.append(delta.partial_json)
                return TextChunk(delta.partial_json)
            if isinstance(delta, InputJSONDelta):
                call = self.tool_blocks.get(event.index)
                if call is None or not delta.partial_json:
                    return None
                self.tools.add(call, fragment=delta.partial_json)
                return ToolCallChunk(call, arguments_json=delta.partial_json)
            # With structured output, text beside the answer tool is preamble, not answer.
            if isinstance(delta, TextDelta) and self.format_tool is not None:
                return None
            if isinstance(delta, TextDelta) and (piece := self.echo.feed(delta.text)):
                self.text.append(piece)
                return TextChunk(piece)
            if isinstance(delta, ThinkingDelta) and delta.thinking:
                self.thought = True
                return ThinkingChunk(delta.thinking)
        elif isinstance(event, RawMessageStartEvent):
            self.provider_model = event.message.model
            self.tally = _UsageTally.of(_message_usage(event.message), final=False)
        elif isinstance(event, RawMessageDeltaEvent):
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.stop_details = event.delta.stop_details or self.stop_details
            self.tally.add_delta(_delta_usage(event))
        elif isinstance(event, RawMessageStopEvent):
            self.stopped = True
        return None

    def end(self) -> StreamEnd:
        reason = _finish_reason(self.stop_reason)
        if self.answer_blocks and not self.tools and reason is FinishReason.TOOL_CALL:
            reason = FinishReason.STOP
        answer = "".join(self.text)
        usage = self.tally.usage()
        return StreamEnd(
            reason,
            usage,
            refusal=_refusal(reason, answer, self.stop_details),
            provider_model=self.provider_model,
            finish_detail=finish_detail(reason, answer, usage, thought=self.thought),
            tool_calls=self.tools.calls(),
        )


class _UsageTally:
    """Token counts as the Messages API reports them: the start of a stream carries the
    input side, each `message_delta` the cumulative output (and, on newer APIs, input)."""

    def __init__(self) -> None:
        self.reported = False
        self.input_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0
        self.output_tokens = 0
        self.thinking_tokens = 0

    @classmethod
    def of(cls, usage: AnthropicUsage | None, *, final: bool) -> _UsageTally:
        """A tally from a message's usage. In a stream (`final` False) the start's output
        count is a placeholder: the usage counts as reported once a delta confirms it."""
        tally = cls()
        if usage is None:
            return tally
        tally.reported = final
        tally.input_tokens = usage.input_tokens
        tally.cache_read_tokens = usage.cache_read_input_tokens or 0
        tally.cache_write_tokens = usage.cache_creation_input_tokens or 0
        tally.output_tokens = usage.output_tokens
        if usage.output_tokens_details is not None:
            tally.thinking_tokens = usage.output_tokens_details.thinking_tokens
        return tally

    def add_delta(self, usage: MessageDeltaUsage | None) -> None:
        if usage is None:
            return
        self.reported = True
        self.output_tokens = usage.output_tokens
        if usage.input_tokens is not None:
            self.input_tokens = usage.input_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read_tokens = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write_tokens = usage.cache_creation_input_tokens
        if usage.output_tokens_details is not None:
            self.thinking_tokens = usage.output_tokens_details.thinking_tokens

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
