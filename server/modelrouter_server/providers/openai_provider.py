"""OpenAI Chat Completions through `openai.AsyncOpenAI`, for OpenAI itself and for
OpenAI-compatible servers (vLLM, Ollama, llama.cpp) reached by base URL."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal, cast

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai._models import FinalRequestOptions
from openai.types import ReasoningEffort as OpenAIReasoningEffort
from openai.types.chat import (
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)
from openai.types.chat.completion_create_params import CompletionCreateParamsBase

from modelrouter_server.config.schema import Capabilities, ModelConfig, ProviderKind
from modelrouter_server.domain import (
    Completion,
    ImagePart,
    Message,
    ProviderRequest,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    StreamEnd,
    StreamEvent,
    TextPart,
    ToolCall,
    ToolChoiceMode,
    ToolSettings,
)
from modelrouter_server.errors import InterruptionKind, ProviderError, StreamInterrupted
from modelrouter_server.providers.connection import Connection
from modelrouter_server.providers.continuation import (
    EchoedWhitespaceFilter,
    split_partial_answer,
    strip_partial_answer,
)
from modelrouter_server.providers.finish_reasons import finish_detail
from modelrouter_server.providers.openai_done_marker import drain_after_done, is_done_marker
from modelrouter_server.providers.openai_wire import (
    StreamedAnswer,
    mapping,
    openai_finish_reason,
    refusal_of,
    text_field,
    usage_of,
)
from modelrouter_server.providers.sdk_endpoint import SdkEndpoint
from modelrouter_server.providers.sse import (
    JSONDecodeError,
    ServerSentEvent,
    SSEDecoder,
    body_bytes,
    json_object,
    next_read,
)
from modelrouter_server.providers.tool_wire import (
    MalformedToolCall,
    arguments_json,
    openai_tool_id,
    parse_arguments,
)
from modelrouter_server.providers.upstream_errors import (
    HttpFailure,
    UpstreamErrors,
    transport_detail,
)
from modelrouter_server.structured import strict_allowed

CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it exactly where it stopped, as if you had "
    "never been interrupted: do not repeat any of it, do not add a preamble or a comment, "
    "and reply with only the rest of the text."
)
"""Chat Completions has no assistant prefill, so a partial answer is sent as an assistant
message followed by this user message, and the reply is taken as the continuation."""

_EFFORTS: Mapping[ReasoningEffort, OpenAIReasoningEffort] = {
    ReasoningEffort.LOW: "low",
    ReasoningEffort.MEDIUM: "medium",
    ReasoningEffort.HIGH: "high",
}

_OPENAI_KINDS = frozenset({ProviderKind.OPENAI, ProviderKind.OPENAI_COMPATIBLE})

_SDK_FAILURES = (openai.APIError, httpx2.RequestError)

# What `chat.completions.create` passes for every call: without it the client sends no key.
_CREATE_OPTIONS: openai.RequestOptions = {"security": {"bearer_auth": True}}

_STREAM_ERROR = "An error occurred during streaming"
"""The SDK's message for an error chunk whose error has none."""


class OpenAIProvider:
    """`Provider` over Chat Completions.

    `models` is the catalog: a model's capabilities decide which parameters it is sent
    (o-series models take no temperature, want `developer` for the system role and take
    `reasoning_effort`). `kind` decides the output cap's name: OpenAI wants
    `max_completion_tokens`, compatible servers understand `max_tokens`.
    """

    def __init__(
        self,
        name: str,
        connection: Connection,
        *,
        models: Mapping[str, ModelConfig],
        kind: ProviderKind = ProviderKind.OPENAI,
        emulated: bool = False,
    ) -> None:
        if kind not in _OPENAI_KINDS:
            raise ValueError(
                f"OpenAIProvider serves kinds openai and openai_compatible, not {kind}"
            )
        self._name = name
        self._kind = kind
        self._models = models
        self._emulated = emulated
        self._connection = connection
        self._pool = connection.pool_watch(name)
        self._client, http = connection.sdk_client(
            openai.AsyncOpenAI, openai.DefaultAsyncHttpxClient, self._pool
        )
        # Chat Completions as the client builds the request, the body sent as built here:
        # `create` would first walk it against its TypedDicts (see providers.sdk_endpoint).
        self._completions = SdkEndpoint(
            self._client,
            "/chat/completions",
            http=http,
            request_options=FinalRequestOptions,
            errors=openai,
            raw_response_header=RAW_RESPONSE_HEADER,
            options=_CREATE_OPTIONS,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def emulated(self) -> bool:
        return self._emulated

    async def complete(self, request: ProviderRequest) -> Completion:
        errors = self._errors(request.model)
        params, stripped = self._params(request)
        # The SDK sends the call (and raises its status errors); the body is parsed here,
        # without building the SDK's models.
        try:
            raw = await self._completions.call(
                params, timeouts=self._connection.call_timeout(request.timeout_s)
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        try:
            completion = json_object(raw.content)
        except JSONDecodeError as exc:
            raise errors.unexpected(f"malformed body: {exc}", status_code=200) from exc
        choices = completion.get("choices")
        if not choices:
            raise errors.unexpected("a completion without choices", status_code=200)
        choice = mapping(choices[0])
        message = mapping(choice.get("message"))
        text = EchoedWhitespaceFilter(stripped).feed(text_field(message.get("content")) or "")
        refusal = refusal_of(text_field(message.get("refusal")))
        reason = openai_finish_reason(choice.get("finish_reason"), refusal)
        usage = usage_of(completion.get("usage"))
        try:
            tool_calls = _tool_calls(message.get("tool_calls") or ())
        except MalformedToolCall as exc:
            raise errors.unexpected(str(exc), status_code=200) from exc
        return Completion(
            text=text,
            finish_reason=reason,
            usage=usage,
            refusal=refusal,
            provider_model=completion.get("model") or "",
            finish_detail=finish_detail(reason, bool(text.strip()), usage),
            tool_calls=tool_calls,
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent, None]:
        errors = self._errors(request.model)
        params, stripped = self._params(request)
        # Without it the stream carries no usage at all.
        params["stream_options"] = {"include_usage": True}
        # The SDK sends the call (and raises its status errors); the body is read here,
        # without a model per chunk: see providers.sse.
        try:
            response = await self._completions.open_stream(
                params, timeouts=self._connection.call_timeout(request.timeout_s)
            )
        except _SDK_FAILURES as exc:
            raise _before_answer(exc, errors) from exc
        request_id = response.headers.get("x-request-id")
        answer = StreamedAnswer(EchoedWhitespaceFilter(stripped))
        body, decoder = body_bytes(response), SSEDecoder()
        done = False
        try:
            while not done:
                read = await next_read(body, decoder, errors, request_id)
                if read is None:
                    break
                events, failure, done = _read_events(read, answer, response, errors, request_id)
                # What the read carried before a failure still goes out first.
                for event in events:
                    yield event
                if failure is not None:
                    raise failure
            if done:
                await drain_after_done(response, body)
        finally:
            # Runs on cancellation and aclose() too: closing the response closes the
            # connection, which is how the server learns to stop generating.
            await response.aclose()
        if not done:
            raise errors.interrupted(
                InterruptionKind.TRUNCATED, "the body ended before [DONE]", request_id=request_id
            )
        yield _stream_end(answer, errors, request_id)

    async def count_tokens(self, model: str, messages: Sequence[Message]) -> int | None:
        # Chat Completions has no counting endpoint; the context manager counts with tiktoken.
        return None

    async def aclose(self) -> None:
        await self._client.close()

    def _errors(self, model: str) -> UpstreamErrors:
        return UpstreamErrors(
            provider=self._name, model=model, secret=self._connection.api_key, pool=self._pool
        )

    def _params(self, request: ProviderRequest) -> tuple[CompletionCreateParamsBase, str]:
        """The call's parameters, and the whitespace stripped off a partial answer."""
        capabilities = self._capabilities(request.model)
        messages, stripped = _messages(
            request.messages, developer_role=capabilities.reasoning_effort
        )
        params: CompletionCreateParamsBase = {"model": request.model, "messages": messages}
        if self._kind is ProviderKind.OPENAI:
            params["max_completion_tokens"] = request.max_output_tokens
        else:
            params["max_tokens"] = request.max_output_tokens
        if capabilities.temperature and request.temperature is not None:
            params["temperature"] = request.temperature
        if capabilities.reasoning_effort and request.reasoning_effort is not None:
            params["reasoning_effort"] = _EFFORTS[request.reasoning_effort]
        if request.stop:
            params["stop"] = list(request.stop)
        _add_tools(params, request.tools)
        _add_response_format(params, request.response_format)
        return params, stripped

    def _capabilities(self, model: str) -> Capabilities:
        config = self._models.get(model)
        return config.capabilities if config is not None else Capabilities()


def _messages(
    messages: Sequence[Message], *, developer_role: bool
) -> tuple[list[ChatCompletionMessageParam], str]:
    history, partial = split_partial_answer(messages)
    if messages and messages[-1].role is Role.ASSISTANT and messages[-1].parts:
        history, partial = tuple(messages), None
    converted: list[ChatCompletionMessageParam] = []
    for message in history:
        if message.role is Role.SYSTEM and developer_role:
            converted.append({"role": "developer", "content": message.content})
        elif message.role is Role.SYSTEM:
            converted.append({"role": "system", "content": message.content})
        elif message.role is Role.USER:
            converted.append({"role": "user", "content": _user_content(message)})
        elif message.role is Role.TOOL:
            converted.extend(_tool_messages(message))
        else:
            converted.append(_assistant_message(message))
    kept, stripped = strip_partial_answer(partial or "")
    if kept:
        converted.append({"role": "assistant", "content": kept})
        converted.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    return converted, stripped


def _user_content(message: Message) -> str | list[ChatCompletionContentPartParam]:
    if not message.parts:
        return message.content
    content: list[ChatCompletionContentPartParam] = []
    for part in message.all_parts():
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            detail = cast(Literal["auto", "low", "high"], part.detail)
            content.append(
                {"type": "image_url", "image_url": {"url": _image_url(part), "detail": detail}}
            )
    return content


def _image_url(part: ImagePart) -> str:
    if part.url:
        return part.url
    return f"data:{part.media_type};base64,{base64.b64encode(part.data).decode('ascii')}"


def _assistant_message(message: Message) -> ChatCompletionMessageParam:
    text = message.plain_text()
    calls = message.tool_calls
    if not calls:
        return {"role": "assistant", "content": text}
    return {
        "role": "assistant",
        "content": text or None,
        "tool_calls": [
            {
                "id": openai_tool_id(call.id),
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_json(call.arguments)},
            }
            for call in calls
        ],
    }


def _tool_messages(message: Message) -> list[ChatCompletionMessageParam]:
    """One `tool` message per result. Chat Completions has no error flag: a failed tool's
    result says so in its text, which is what the model reads."""
    return [
        {
            "role": "tool",
            "tool_call_id": openai_tool_id(result.tool_call_id),
            "content": f"Error: {result.content}" if result.is_error else result.content,
        }
        for result in message.tool_results
    ]


def _add_response_format(params: CompletionCreateParamsBase, fmt: ResponseFormat) -> None:
    """JSON mode, or a json_schema format (strict only when the schema meets strict
    mode's rules: the router validates the reply either way)."""
    if fmt.type is ResponseFormatType.JSON_OBJECT:
        params["response_format"] = {"type": "json_object"}
    elif fmt.type is ResponseFormatType.JSON_SCHEMA:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": fmt.name,
                "schema": dict(fmt.schema),
                "strict": fmt.strict and strict_allowed(fmt.schema),
            },
        }


def _add_tools(params: CompletionCreateParamsBase, settings: ToolSettings) -> None:
    """The request's tools and tool choice, in Chat Completions' terms."""
    if not settings.tools:
        return
    tools: list[ChatCompletionToolParam] = []
    for tool in settings.tools:
        function: dict[str, object] = {
            "name": tool.name,
            "parameters": dict(tool.input_schema) or {"type": "object", "properties": {}},
        }
        if tool.description:
            function["description"] = tool.description
        tools.append(cast(ChatCompletionToolParam, {"type": "function", "function": function}))
    params["tools"] = tools
    choice = settings.choice
    mapped: ChatCompletionToolChoiceOptionParam
    if choice.mode is ToolChoiceMode.NONE:
        mapped = "none"
    elif choice.mode is ToolChoiceMode.REQUIRED:
        mapped = "required"
    elif choice.mode is ToolChoiceMode.TOOL:
        mapped = {"type": "function", "function": {"name": choice.name}}
    else:
        mapped = "auto"
    params["tool_choice"] = mapped
    if settings.parallel is not None:
        params["parallel_tool_calls"] = settings.parallel


def _read_events(
    read: list[ServerSentEvent],
    answer: StreamedAnswer,
    response: httpx2.Response,
    errors: UpstreamErrors,
    request_id: str | None,
) -> tuple[list[StreamEvent], StreamInterrupted | None, bool]:
    """The events one network read carries, the failure that cut it (an error chunk or
    malformed JSON, raised after the events before it), and whether [DONE] came."""
    events: list[StreamEvent] = []
    for sse in read:
        if is_done_marker(sse.data):
            return events, None, True
        try:
            chunk = _chunk(sse.data, response, errors, request_id)
        except StreamInterrupted as failure:
            return events, failure, False
        events.extend(answer.feed(chunk))
    return events, None, False


def _chunk(
    data: bytes, response: httpx2.Response, errors: UpstreamErrors, request_id: str | None
) -> Mapping[str, Any]:
    """One chunk parsed; an error chunk or malformed JSON becomes `StreamInterrupted`."""
    try:
        chunk = json_object(data)
    except JSONDecodeError as exc:
        raise errors.interrupted(
            InterruptionKind.ERROR_EVENT, f"malformed chunk: {exc}", request_id=request_id
        ) from exc
    error = chunk.get("error")
    if error:
        # What the SDK raises for an error chunk (a bare APIError, status None), so that
        # the description is the same as the SDK path's.
        message = mapping(error).get("message")
        failure = openai.APIError(
            message if message and isinstance(message, str) else _STREAM_ERROR,
            response.request,
            body=error,
        )
        raise errors.interrupted(
            InterruptionKind.ERROR_EVENT, _describe(failure), request_id=request_id
        ) from failure
    return chunk


def _stream_end(
    answer: StreamedAnswer, errors: UpstreamErrors, request_id: str | None
) -> StreamEnd:
    """The stream's last event, once the body ended with [DONE]."""
    refusal = refusal_of(None if answer.refused is None else "".join(answer.refused))
    reason = openai_finish_reason(answer.raw_reason, refusal)
    sent_usage = usage_of(answer.usage)
    try:
        tool_calls = answer.tools.calls()
    except MalformedToolCall as exc:
        raise errors.interrupted(
            InterruptionKind.ERROR_EVENT, str(exc), request_id=request_id
        ) from exc
    return StreamEnd(
        reason,
        sent_usage,
        refusal=refusal,
        provider_model=answer.provider_model,
        finish_detail=finish_detail(reason, answer.visible_text, sent_usage),
        tool_calls=tool_calls,
    )


def _before_answer(
    exc: openai.APIError | httpx2.RequestError, errors: UpstreamErrors
) -> ProviderError:
    """The domain error for a call that failed before any answer arrived."""
    if isinstance(exc, openai.APIStatusError):
        return errors.from_status(
            HttpFailure(
                status_code=exc.status_code,
                error_type=exc.type,
                error_code=exc.code,
                message=_api_message(exc),
                request_id=exc.request_id,
                headers=exc.response.headers,
            ),
            context_window=exc.code == "context_length_exceeded",
            # Out of credit, unlike a rate limit, does not pass by waiting.
            quota_exhausted="insufficient_quota" in (exc.code, exc.type),
        )
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return errors.timeout(transport_detail(exc), cause=exc)
    if isinstance(exc, openai.APIConnectionError | httpx2.RequestError):
        return errors.connection(transport_detail(exc))
    return errors.unexpected(_describe(exc))


def _api_message(exc: openai.APIError) -> str:
    # `exc.message` is the SDK's summary with the whole body in it; the body's own
    # message is the provider's words.
    body = exc.body
    if isinstance(body, Mapping) and isinstance(message := body.get("message"), str):
        return message
    return exc.message


def _describe(exc: openai.APIError) -> str:
    labels = " ".join(label for label in (exc.type, exc.code) if label)
    return f"{labels or 'error'}: {_api_message(exc)}"


def _tool_calls(calls: Sequence[Mapping[str, Any]]) -> tuple[ToolCall, ...]:
    """A unary message's function calls; raises `MalformedToolCall` on bad arguments."""
    found: list[ToolCall] = []
    for call in calls:
        if call.get("type") != "function":
            continue
        function = mapping(call.get("function"))
        name = function.get("name") or ""
        found.append(
            ToolCall(
                call.get("id") or "", name, parse_arguments(name, function.get("arguments") or "")
            )
        )
    return tuple(found)
