"""Anthropic's Messages API through `anthropic.AsyncAnthropic`."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import anthropic
import httpx2
from anthropic._constants import RAW_RESPONSE_HEADER
from anthropic._models import FinalRequestOptions
from anthropic.types import (
    CacheControlEphemeralParam,
    ContentBlockParam,
    MessageParam,
    ThinkingConfigEnabledParam,
    ToolChoiceParam,
    ToolParam,
)
from anthropic.types.message_create_params import MessageCreateParamsBase

from modelrouter_server.domain import (
    Completion,
    FinishReason,
    ImagePart,
    Message,
    ProviderRequest,
    ResponseFormat,
    Role,
    StreamEvent,
    TextChunk,
    TextPart,
    ThinkingChunk,
    ToolCall,
    ToolCallChunk,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
)
from modelrouter_server.errors import InterruptionKind, ProviderError, StreamInterrupted
from modelrouter_server.providers.anthropic_wire import (
    StreamReading,
    UsageTally,
    anthropic_finish_reason,
    refusal_of,
)
from modelrouter_server.providers.connection import Connection
from modelrouter_server.providers.continuation import (
    EchoedWhitespaceFilter,
    strip_partial_answer,
)
from modelrouter_server.providers.finish_reasons import finish_detail
from modelrouter_server.providers.openai_wire import mapping
from modelrouter_server.providers.sdk_endpoint import SdkEndpoint
from modelrouter_server.providers.sse import (
    JSONDecodeError,
    ServerSentEvent,
    SSEDecoder,
    body_bytes,
    json_object,
    loads,
    next_read,
)
from modelrouter_server.providers.tool_wire import (
    MalformedToolCall,
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
    """One request in the Messages API's terms."""

    body: Mapping[str, object]
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
        self._pool = connection.pool_watch(name)
        # The SDK's default client keeps its TCP keep-alive settings; only the pool changes.
        self._client, http = connection.sdk_client(
            anthropic.AsyncAnthropic, anthropic.DefaultAsyncHttpxClient, self._pool
        )
        # The Messages API as the client builds the request, the body sent as built here
        # (see providers.sdk_endpoint). `create` would add nothing we need: its header
        # parameters are ones we never set, its own timeout is only for calls given none,
        # and the OpenTelemetry span it names records and sends trace headers only where a
        # tracer provider is set up, which the router never does.
        self._messages = SdkEndpoint(
            self._client,
            "/v1/messages",
            http=http,
            request_options=FinalRequestOptions,
            errors=anthropic,
            raw_response_header=RAW_RESPONSE_HEADER,
            # What the client's own loop turns into a connection error: any failure to send.
            connection_failures=(Exception,),
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
        # The SDK sends the call (and raises its status errors); the body is parsed here,
        # without building the SDK's models.
        try:
            raw = await self._messages.call(
                call.body, timeouts=self._connection.call_timeout(request.timeout_s)
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        try:
            message = json_object(raw.content)
        except JSONDecodeError as exc:
            raise errors.unexpected(f"malformed body: {exc}", status_code=200) from exc
        return _completion(message, call)

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent, None]:
        call = _call(request)
        errors = self._errors(request.model)
        # The SDK sends the call (and raises its status errors); the body is read here,
        # without a model per event: see providers.sse.
        try:
            response = await self._messages.open_stream(
                call.body, timeouts=self._connection.call_timeout(request.timeout_s)
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        request_id = response.headers.get("request-id")
        reading = StreamReading(
            EchoedWhitespaceFilter(call.stripped_prefill), format_tool=call.format_tool
        )
        body, decoder = body_bytes(response), SSEDecoder()
        try:
            while not reading.stopped:
                read = await next_read(body, decoder, errors, request_id)
                if read is None:
                    break
                chunks, failure = _read_events(read, reading, response, errors, request_id)
                # What the read carried before a failure still goes out first.
                for chunk in chunks:
                    yield chunk
                if failure is not None:
                    raise failure
        finally:
            # Runs on cancellation and aclose() too: closing the response closes the
            # connection, which is how the provider learns to stop generating.
            await response.aclose()
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
    prefilling = bool(turns) and turns[-1]["role"] == "assistant"
    # The API refuses thinking together with a prefilled answer, and continuing a partial
    # answer needs no fresh thinking, so a continuation runs without it.
    # Nor with structured output: the API refuses thinking while a tool use is forced.
    budget = None if prefilling or fmt.is_json else request.thinking_budget_tokens
    if budget:
        thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": budget}
        params["thinking"] = thinking
    body: dict[str, object] = dict(params)
    # With thinking on, the API requires the default temperature, so none is sent.
    if request.temperature is not None and not budget:
        # anthropic 2.14's params have no temperature (nor has create()); the API takes it.
        body["temperature"] = request.temperature
    return _Call(
        body=body,
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


def _read_events(
    read: list[ServerSentEvent],
    reading: StreamReading,
    response: httpx2.Response,
    errors: UpstreamErrors,
    request_id: str | None,
) -> tuple[list[TextChunk | ThinkingChunk | ToolCallChunk], StreamInterrupted | None]:
    """The chunks one network read carries, up to `message_stop`, and the failure that
    cut it (an `error` event or malformed JSON, raised after the chunks before it).
    Events are passed on as the SDK does: no `ping`, no unnamed or empty event."""
    chunks: list[TextChunk | ThinkingChunk | ToolCallChunk] = []
    for sse in read:
        if sse.event is None or sse.event == b"ping":
            continue
        if sse.event == b"error":
            return chunks, _error_event(sse.data, response, errors, request_id)
        if not sse.data:
            continue
        try:
            event = json_object(sse.data)
        except JSONDecodeError as exc:
            failure = errors.interrupted(
                InterruptionKind.ERROR_EVENT, f"malformed event: {exc}", request_id=request_id
            )
            failure.__cause__ = exc
            return chunks, failure
        if (chunk := reading.on_event(event)) is not None:
            chunks.append(chunk)
        if reading.stopped:
            break
    return chunks, None


def _error_event(
    data: bytes, response: httpx2.Response, errors: UpstreamErrors, request_id: str | None
) -> StreamInterrupted:
    """An SSE `error` event, read into the exception the SDK raises for it (a plain
    `APIStatusError` with the stream's 200 status) and described as before."""
    body: object
    try:
        body = loads(data)
        summary = f"{body}"
    except JSONDecodeError:
        body = data.decode("utf-8", errors="replace")
        summary = body or f"Error code: {response.status_code}"
    failure = anthropic.APIStatusError(summary, response=response, body=body)
    interrupted = errors.interrupted(
        InterruptionKind.ERROR_EVENT,
        _failure(failure).describe(),
        request_id=failure.request_id or request_id,
    )
    interrupted.__cause__ = failure
    return interrupted


def _completion(message: Mapping[str, Any], call: _Call) -> Completion:
    """A unary message in the domain's terms."""
    blocks = [mapping(block) for block in message.get("content") or ()]
    text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
    thinking = "".join(b.get("thinking") or "" for b in blocks if b.get("type") == "thinking")
    text = EchoedWhitespaceFilter(call.stripped_prefill).feed(text)
    uses = [b for b in blocks if b.get("type") == "tool_use"]
    answer = next((u for u in uses if u.get("name") == call.format_tool), None)
    tool_calls = tuple(
        ToolCall(u.get("id") or "", u.get("name") or "", _input_object(u.get("input")))
        for u in uses
        if u is not answer
    )
    reason = anthropic_finish_reason(message.get("stop_reason"))
    if answer is not None:
        # Structured output came as the forced tool's input: that is the answer.
        text = arguments_json(_input_object(answer.get("input")))
        if not tool_calls and reason is FinishReason.TOOL_CALL:
            reason = FinishReason.STOP
    usage = UsageTally.of(message.get("usage"), final=True).usage()
    return Completion(
        text=text,
        finish_reason=reason,
        usage=usage,
        thinking=thinking,
        refusal=refusal_of(reason, text, message.get("stop_details")),
        provider_model=message.get("model") or "",
        finish_detail=finish_detail(reason, bool(text.strip()), usage, thought=bool(thinking)),
        tool_calls=tool_calls,
    )


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
