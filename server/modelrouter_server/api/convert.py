"""Protobuf <-> domain conversion.

What cannot be checked without the proto (an enum value out of range) is checked here;
everything else is checked by `modelrouter_server.validation` on the converted values.
Every rejection is a `RequestError` naming the proto field path (`messages[2].role`),
which the status table maps to INVALID_ARGUMENT with a BadRequest detail. Every response
message is built here too, so the servicer only calls the stages.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_server.attempts import AttemptRecord, Outcome
from modelrouter_server.config.schema import LimitsConfig
from modelrouter_server.config.security import TenantConfig
from modelrouter_server.context import Conversation, StoredMessage
from modelrouter_server.domain import (
    DEFAULT_FORMAT_NAME,
    NO_TOOLS,
    TEXT_FORMAT,
    ContextReport,
    CountMethod,
    FinishReason,
    GenerateOptions,
    ImagePart,
    Importance,
    Message,
    Part,
    ReasoningEffort,
    Refusal,
    RefusalChunk,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Task,
    TextChunk,
    TextPart,
    ThinkingChunk,
    Tool,
    ToolCall,
    ToolCallChunk,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
    Usage,
)
from modelrouter_server.error_facts import attempt_status
from modelrouter_server.errors import RequestError
from modelrouter_server.resilience import ChainResumed, ChainStarted, CircuitState
from modelrouter_server.structured import check_response_format
from modelrouter_server.tenancy.ledger import Limits, PeriodUsage, TenantUsage
from modelrouter_server.validation import (
    check_generate_options,
    check_id,
    check_message_count,
    check_messages,
    check_metadata,
    check_stored_history,
    check_tools,
    encode_message_page_token,
)

if TYPE_CHECKING:
    from modelrouter_server.candidates import Candidate
    from modelrouter_server.config.schema import ModelConfig
    from modelrouter_server.context import TokenCount
    from modelrouter_server.generation import GenerateOutcome, StreamClosed
    from modelrouter_server.resilience import ChainEvent, ChainFinished

_ROLES = {
    pb.ROLE_SYSTEM: Role.SYSTEM,
    pb.ROLE_USER: Role.USER,
    pb.ROLE_ASSISTANT: Role.ASSISTANT,
    pb.ROLE_TOOL: Role.TOOL,
}
_TOOL_CHOICES = {
    pb.TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_AUTO: ToolChoiceMode.AUTO,
    pb.TOOL_CHOICE_MODE_NONE: ToolChoiceMode.NONE,
    pb.TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode.REQUIRED,
    pb.TOOL_CHOICE_MODE_TOOL: ToolChoiceMode.TOOL,
}
_ROLE_TO_PB = {v: k for k, v in _ROLES.items()}
_IMPORTANCE = {
    pb.IMPORTANCE_UNSPECIFIED: Importance.NORMAL,
    pb.IMPORTANCE_LOW: Importance.LOW,
    pb.IMPORTANCE_NORMAL: Importance.NORMAL,
    pb.IMPORTANCE_HIGH: Importance.HIGH,
}
_IMPORTANCE_TO_PB = {
    Importance.LOW: pb.IMPORTANCE_LOW,
    Importance.NORMAL: pb.IMPORTANCE_NORMAL,
    Importance.HIGH: pb.IMPORTANCE_HIGH,
}
_TASKS = {
    pb.TASK_UNSPECIFIED: Task.UNSPECIFIED,
    pb.TASK_CHAT: Task.CHAT,
    pb.TASK_REASONING: Task.REASONING,
    pb.TASK_CODE: Task.CODE,
    pb.TASK_SUMMARIZE: Task.SUMMARIZE,
    pb.TASK_EXTRACT: Task.EXTRACT,
}
_EFFORTS = {
    pb.REASONING_EFFORT_LOW: ReasoningEffort.LOW,
    pb.REASONING_EFFORT_MEDIUM: ReasoningEffort.MEDIUM,
    pb.REASONING_EFFORT_HIGH: ReasoningEffort.HIGH,
}
_FINISH_TO_PB = {
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.STOP_SEQUENCE: pb.FINISH_REASON_STOP_SEQUENCE,
    FinishReason.TOOL_CALL: pb.FINISH_REASON_TOOL_CALL,
    FinishReason.CONTENT_FILTER: pb.FINISH_REASON_CONTENT_FILTER,
    FinishReason.CONTEXT_WINDOW: pb.FINISH_REASON_CONTEXT_WINDOW,
    FinishReason.REFUSAL: pb.FINISH_REASON_REFUSAL,
    FinishReason.PAUSED: pb.FINISH_REASON_PAUSED,
    FinishReason.UNKNOWN: pb.FINISH_REASON_UNSPECIFIED,
}
COUNT_METHOD_TO_PB = {
    CountMethod.EXACT_LOCAL: pb.COUNT_METHOD_EXACT_LOCAL,
    CountMethod.PROVIDER: pb.COUNT_METHOD_PROVIDER,
    CountMethod.ESTIMATE: pb.COUNT_METHOD_ESTIMATE,
}
_OUTCOME_TO_PB = {
    Outcome.SUCCESS: pb.ATTEMPT_OUTCOME_SUCCESS,
    Outcome.ERROR: pb.ATTEMPT_OUTCOME_ERROR,
    Outcome.SKIPPED_CIRCUIT_OPEN: pb.ATTEMPT_OUTCOME_SKIPPED_CIRCUIT_OPEN,
    Outcome.SKIPPED_CONTEXT_WINDOW: pb.ATTEMPT_OUTCOME_SKIPPED_CONTEXT_WINDOW,
    Outcome.SKIPPED_CAPABILITY: pb.ATTEMPT_OUTCOME_SKIPPED_CAPABILITY,
    Outcome.SKIPPED_COST: pb.ATTEMPT_OUTCOME_SKIPPED_COST,
    Outcome.INTERRUPTED: pb.ATTEMPT_OUTCOME_INTERRUPTED,
    Outcome.SKIPPED_DEADLINE: pb.ATTEMPT_OUTCOME_SKIPPED_DEADLINE,
    Outcome.REFUSED: pb.ATTEMPT_OUTCOME_REFUSED,
}


def _messages(messages: Sequence[pb.Message], field: str) -> tuple[Message, ...]:
    """Messages with known enum values (what only the proto can tell), not yet checked."""
    out: list[Message] = []
    for i, m in enumerate(messages):
        role = _ROLES.get(m.role)
        if role is None:
            raise RequestError(
                f"{field}[{i}].role",
                "must be ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT or ROLE_TOOL",
            )
        importance = _IMPORTANCE.get(m.importance)
        if importance is None:
            raise RequestError(f"{field}[{i}].importance", f"unknown value {m.importance}")
        parts = tuple(_part(p, f"{field}[{i}].parts[{k}]") for k, p in enumerate(m.parts))
        out.append(
            Message(
                role=role,
                content=m.content,
                pinned=m.pinned,
                importance=importance,
                parts=parts,
            )
        )
    return tuple(out)


def struct_to_dict(value: Struct) -> dict[str, object]:
    """A Struct as plain JSON values. Struct holds every number as a double; whole numbers
    come back as ints, so `3` reaches a tool (and a schema's "integer") as 3, not 3.0."""
    plain = _plain(json_format.MessageToDict(value))
    return plain if isinstance(plain, dict) else {}


def _plain(value: object) -> object:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def dict_to_struct(value: Mapping[str, object]) -> Struct:
    out = Struct()
    json_format.ParseDict(dict(value), out)
    return out


def _part(part: pb.Part, path: str) -> Part:
    kind = part.WhichOneof("kind")
    if kind == "text":
        return TextPart(part.text)
    if kind == "image":
        image = part.image
        return ImagePart(
            data=image.data,
            media_type=image.media_type,
            url=image.url,
            detail=image.detail or "auto",
        )
    if kind == "tool_call":
        call = part.tool_call
        return ToolCall(call.id, call.name, struct_to_dict(call.arguments))
    if kind == "tool_result":
        result = part.tool_result
        texts = [result.content] if result.content else []
        for k, inner in enumerate(result.parts):
            if inner.WhichOneof("kind") != "text":
                raise RequestError(
                    f"{path}.tool_result.parts[{k}]", "a tool result's parts must be text"
                )
            texts.append(inner.text)
        return ToolResult(result.tool_call_id, "\n\n".join(texts), result.is_error)
    raise RequestError(path, "must set one of text, image, tool_call or tool_result")


_FORMAT_TYPES = {
    pb.RESPONSE_FORMAT_TYPE_UNSPECIFIED: ResponseFormatType.TEXT,
    pb.RESPONSE_FORMAT_TYPE_TEXT: ResponseFormatType.TEXT,
    pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT: ResponseFormatType.JSON_OBJECT,
    pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: ResponseFormatType.JSON_SCHEMA,
}


def _response_format(request: AnyGenerateRequest) -> ResponseFormat:
    if not request.HasField("response_format"):
        return TEXT_FORMAT  # most calls: no Struct to convert
    raw = request.response_format
    kind = _FORMAT_TYPES.get(raw.type)
    if kind is None:
        raise RequestError("response_format.type", f"unknown value {raw.type}")
    return ResponseFormat(
        type=kind,
        schema=struct_to_dict(raw.schema),
        name=raw.name or DEFAULT_FORMAT_NAME,
        strict=raw.strict,
    )


def _tool_settings(request: AnyGenerateRequest) -> ToolSettings:
    if not (
        request.tools or request.HasField("tool_choice") or request.HasField("parallel_tool_calls")
    ):
        return NO_TOOLS  # most calls: nothing to convert
    tools = tuple(
        Tool(t.name, t.description, struct_to_dict(t.input_schema)) for t in request.tools
    )
    mode = _TOOL_CHOICES.get(request.tool_choice.mode)
    if mode is None:
        raise RequestError("tool_choice.mode", f"unknown value {request.tool_choice.mode}")
    parallel = request.parallel_tool_calls if request.HasField("parallel_tool_calls") else None
    return ToolSettings(tools, ToolChoice(mode, request.tool_choice.name), parallel)


def messages_from_pb(
    messages: Sequence[pb.Message], limits: LimitsConfig, *, field: str = "messages"
) -> tuple[Message, ...]:
    """Converted, then `check_messages` (content, count, sizes)."""
    check_message_count(len(messages), limits, field=field)
    out = _messages(messages, field)
    check_messages(out, limits, field=field)
    return out


def create_conversation_from_pb(
    request: pb.CreateConversationRequest, limits: LimitsConfig
) -> tuple[tuple[Message, ...], dict[str, str]]:
    """The opening messages and metadata of a new conversation: the same checks as a
    Generate's, and a role order every later turn can continue."""
    messages = messages_from_pb(request.messages, limits)
    check_stored_history(messages)
    metadata = dict(request.metadata)
    check_metadata(metadata, limits)
    return messages, metadata


# GenerateStreamRequest has GenerateRequest's fields, numbers and meaning (the contract
# gives each RPC its own request type), so one conversion serves both.
AnyGenerateRequest = pb.GenerateRequest | pb.GenerateStreamRequest


def options_from_pb(request: AnyGenerateRequest, limits: LimitsConfig) -> GenerateOptions:
    """A validated GenerateOptions (`check_generate_options`). Model-dependent limits
    (output cap, thinking) are checked by the router once the model is known."""
    # Ids first: a huge one is refused before anything else is converted.
    check_id(request.conversation_id, limits, field="conversation_id")
    check_id(request.request_id, limits, field="request_id")
    check_message_count(len(request.messages), limits)
    messages = _messages(request.messages, "messages")
    task = _TASKS.get(request.task)
    if task is None:
        raise RequestError("task", f"unknown value {request.task}")
    effort: ReasoningEffort | None = None
    if request.reasoning_effort != pb.REASONING_EFFORT_UNSPECIFIED:
        effort = _EFFORTS.get(request.reasoning_effort)
        if effort is None:
            raise RequestError("reasoning_effort", f"unknown value {request.reasoning_effort}")
    options = GenerateOptions(
        messages=messages,
        model=request.model.strip(),
        task=task,
        max_output_tokens=request.max_output_tokens,
        temperature=request.temperature if request.HasField("temperature") else None,
        reasoning_effort=effort,
        thinking_budget_tokens=request.thinking_budget_tokens,
        stop=tuple(request.stop),
        request_id=request.request_id or uuid.uuid4().hex,
        # A map, even an empty one, is slow to copy through the Mapping protocol.
        metadata=dict(request.metadata) if request.metadata else {},
        disable_fallback=request.disable_fallback,
        max_cost_usd=request.max_cost_usd,
        conversation_id=request.conversation_id,
        tools=_tool_settings(request),
        response_format=_response_format(request),
    )
    check_generate_options(options, limits)
    check_tools(options.tools)
    check_response_format(options.response_format, {t.name for t in options.tools.tools})
    return options


def message_to_pb(message: Message) -> pb.Message:
    return pb.Message(
        role=_ROLE_TO_PB[message.role],
        content=message.content,
        pinned=message.pinned,
        importance=_IMPORTANCE_TO_PB[message.importance],
        parts=[part_to_pb(p) for p in message.parts],
    )


def part_to_pb(part: Part) -> pb.Part:
    if isinstance(part, TextPart):
        return pb.Part(text=part.text)
    if isinstance(part, ImagePart):
        image = pb.Image(
            data=part.data, media_type=part.media_type, url=part.url, detail=part.detail
        )
        return pb.Part(image=image)
    if isinstance(part, ToolCall):
        return pb.Part(tool_call=tool_call_to_pb(part))
    return pb.Part(
        tool_result=pb.ToolResult(
            tool_call_id=part.tool_call_id, content=part.content, is_error=part.is_error
        )
    )


def tool_call_to_pb(call: ToolCall) -> pb.ToolCall:
    return pb.ToolCall(id=call.id, name=call.name, arguments=dict_to_struct(call.arguments))


def finish_reason_to_pb(reason: FinishReason) -> pb.FinishReason.ValueType:
    return _FINISH_TO_PB[reason]


def usage_to_pb(usage: Usage, cost_usd: float) -> pb.Usage:
    return pb.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=cost_usd,
        count_method=COUNT_METHOD_TO_PB[usage.method],
    )


def refusal_to_pb(refusal: Refusal | None) -> pb.Refusal | None:
    if refusal is None:
        return None
    return pb.Refusal(text=refusal.text, category=refusal.category, explanation=refusal.explanation)


def attempts_to_pb(attempts: Sequence[AttemptRecord]) -> list[pb.Attempt]:
    return [
        pb.Attempt(
            model=a.model,
            provider=a.provider,
            outcome=_OUTCOME_TO_PB[a.outcome],
            grpc_code=int(attempt_status(a).value[0]),
            error=a.error,
            latency_ms=a.latency_ms,
            ttft_ms=a.ttft_ms,
        )
        for a in attempts
    ]


def context_report_to_pb(report: ContextReport | None) -> pb.ContextReport | None:
    if report is None:
        return None
    return pb.ContextReport(
        history_tokens=report.history_tokens,
        sent_tokens=report.sent_tokens,
        summarized_messages=report.summarized_messages,
        pruned_messages=report.pruned_messages,
        budget_tokens=report.budget_tokens,
    )


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def stored_message_to_pb(message: StoredMessage) -> pb.StoredMessage:
    out = pb.StoredMessage(
        seq=message.seq,
        message=message_to_pb(message.message),
        tokens=message.tokens,
        created_at=_timestamp(message.created_at),
        is_summary=message.is_summary,
        summarizes=list(message.summarizes),
        request_id=message.request_id,
    )
    if message.summarized_by is not None:
        out.summarized_by = message.summarized_by
    return out


_FRAMING_BYTES = 16
"""Room for a repeated field's tag and length prefix, and the next-page token."""


def conversation_to_pb(
    conversation: Conversation,
    *,
    first_seq: int = 0,
    page_size: int | None = None,
    max_bytes: int | None = None,
    unsized: Mapping[int, int] | None = None,
) -> pb.Conversation:
    """The conversation with its messages from `first_seq`: at most `page_size` of them and
    a serialized size under `max_bytes` (None: no limit), but always at least one, with
    `next_message_page_token` set when messages remain. `unsized` (seq -> bytes): what
    the reply will carry for a message beyond its size here (its text, encoded apart)."""
    out = pb.Conversation(
        id=conversation.id,
        created_at=_timestamp(conversation.created_at),
        updated_at=_timestamp(conversation.updated_at),
        metadata=dict(conversation.metadata),
        message_count=conversation.message_count or len(conversation.messages),
    )
    budget = None if max_bytes is None else max_bytes - out.ByteSize() - 4 * _FRAMING_BYTES
    for message in conversation.messages:
        if message.seq < first_seq:
            continue
        if page_size is not None and len(out.messages) >= page_size:
            out.next_message_page_token = encode_message_page_token(message.seq)
            break
        item = stored_message_to_pb(message)
        if budget is not None:
            size = item.ByteSize() + _FRAMING_BYTES + (unsized or {}).get(message.seq, 0)
            if out.messages and size > budget:
                out.next_message_page_token = encode_message_page_token(message.seq)
                break
            budget -= size
        out.messages.append(item)
    return out


def _replayed_finish(tool_calls: Sequence[ToolCall]) -> pb.FinishReason.ValueType:
    return pb.FINISH_REASON_TOOL_CALL if tool_calls else pb.FINISH_REASON_STOP


def replayed_response_pb(
    request_id: str, text: str, tool_calls: Sequence[ToolCall] = ()
) -> pb.GenerateResponse:
    """The reply to a Generate whose turn was already recorded: its stored answer."""
    return pb.GenerateResponse(
        text=text,
        finish_reason=_replayed_finish(tool_calls),
        usage=pb.Usage(),
        request_id=request_id,
        replayed=True,
        tool_calls=[tool_call_to_pb(c) for c in tool_calls],
    )


def replayed_stream_pb(
    request_id: str, text: str, tool_calls: Sequence[ToolCall] = ()
) -> list[pb.GenerateStreamResponse]:
    """A GenerateStream whose turn was already recorded: start, the stored answer as one
    delta, finish (with the stored tool calls, complete)."""
    return [
        pb.GenerateStreamResponse(start=pb.StreamStart(request_id=request_id)),
        pb.GenerateStreamResponse(delta=pb.TextDelta(text=text)),
        pb.GenerateStreamResponse(
            finish=pb.StreamFinish(
                finish_reason=_replayed_finish(tool_calls),
                usage=pb.Usage(),
                replayed=True,
                tool_calls=[tool_call_to_pb(c) for c in tool_calls],
            )
        ),
    ]


_CIRCUIT = {
    CircuitState.CLOSED: pb.CIRCUIT_STATE_CLOSED,
    CircuitState.OPEN: pb.CIRCUIT_STATE_OPEN,
    CircuitState.HALF_OPEN: pb.CIRCUIT_STATE_HALF_OPEN,
}


def generate_response_to_pb(outcome: GenerateOutcome, request_id: str) -> pb.GenerateResponse:
    result = outcome.result
    replayed = outcome.replayed_text
    return pb.GenerateResponse(
        text=result.completion.text if replayed is None else replayed,
        replayed=replayed is not None,
        model=result.candidate.model_id,
        provider=result.candidate.provider,
        finish_reason=finish_reason_to_pb(result.completion.finish_reason)
        if replayed is None
        else _replayed_finish(outcome.replayed_tool_calls),
        usage=usage_to_pb(result.usage, result.cost_usd),
        attempts=attempts_to_pb(result.attempts),
        fallback=result.fallback,
        request_id=request_id,
        thinking=result.completion.thinking,
        context=context_report_to_pb(outcome.context),
        refusal=refusal_to_pb(result.completion.refusal),
        provider_model=result.completion.provider_model,
        finish_detail=result.completion.finish_detail,
        tool_calls=[
            tool_call_to_pb(c)
            for c in (
                result.completion.tool_calls if replayed is None else outcome.replayed_tool_calls
            )
        ],
    )


def stream_event_to_pb(event: ChainEvent, request_id: str) -> pb.GenerateStreamResponse | None:
    """The message for one chain event (None for events the client does not see, and
    for the finish, which waits for the stored turn: `stream_finish_to_pb`)."""
    if isinstance(event, TextChunk):
        return pb.GenerateStreamResponse(delta=pb.TextDelta(text=event.text))
    if isinstance(event, ThinkingChunk):
        return pb.GenerateStreamResponse(thinking_delta=pb.ThinkingDelta(text=event.text))
    if isinstance(event, RefusalChunk):
        return pb.GenerateStreamResponse(refusal_delta=pb.RefusalDelta(text=event.text))
    if isinstance(event, ToolCallChunk):
        delta = pb.ToolCallDelta(
            index=event.index, id=event.id, name=event.name, arguments_json=event.arguments_json
        )
        return pb.GenerateStreamResponse(tool_call_delta=delta)
    if isinstance(event, ChainStarted):
        return stream_start_to_pb(event.candidate, request_id)
    if isinstance(event, ChainResumed):
        return stream_resume_to_pb(event)
    return None


def stream_start_to_pb(candidate: Candidate, request_id: str) -> pb.GenerateStreamResponse:
    start = pb.StreamStart(
        model=candidate.model_id, provider=candidate.provider, request_id=request_id
    )
    return pb.GenerateStreamResponse(start=start)


def stream_resume_to_pb(event: ChainResumed) -> pb.GenerateStreamResponse:
    resume = pb.StreamResume(
        model=event.candidate.model_id,
        provider=event.candidate.provider,
        resumed_at_char=event.at_char,
        reason=event.reason,
    )
    return pb.GenerateStreamResponse(resume=resume)


def stream_finish_to_pb(finished: ChainFinished, closed: StreamClosed) -> pb.GenerateStreamResponse:
    finish = pb.StreamFinish(
        finish_reason=finish_reason_to_pb(finished.finish_reason),
        usage=usage_to_pb(finished.usage, finished.cost_usd),
        attempts=attempts_to_pb(finished.attempts),
        model=finished.candidate.model_id,
        provider=finished.candidate.provider,
        fallback=finished.fallback,
        resumed=bool(finished.resumed_at_chars),
        resumed_at_chars=list(finished.resumed_at_chars),
        context=context_report_to_pb(closed.context),
        refusal=refusal_to_pb(finished.refusal),
        provider_model=finished.provider_model,
        finish_detail=finished.finish_detail,
        tool_calls=[tool_call_to_pb(c) for c in finished.tool_calls],
    )
    return pb.GenerateStreamResponse(finish=finish)


def count_to_pb(count: TokenCount, model_id: str, context_window: int) -> pb.CountTokensResponse:
    return pb.CountTokensResponse(
        input_tokens=count.tokens,
        model=model_id,
        method=COUNT_METHOD_TO_PB[count.method],
        context_window=context_window,
    )


def model_info_to_pb(
    model_id: str, model: ModelConfig, state: CircuitState, *, emulated: bool
) -> pb.ModelInfo:
    caps, price = model.capabilities, model.pricing
    return pb.ModelInfo(
        id=model_id,
        provider=model.provider,
        aliases=list(model.aliases),
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        capabilities=pb.Capabilities(
            streaming=caps.streaming,
            thinking=caps.thinking,
            reasoning_effort=caps.reasoning_effort,
            temperature=caps.temperature,
            tools=caps.tools,
            vision=caps.vision,
            prompt_caching=caps.prompt_caching,
        ),
        pricing=pb.Pricing(
            input_per_mtok=price.input_per_mtok,
            output_per_mtok=price.output_per_mtok,
            cache_read_per_mtok=price.cache_read_per_mtok,
            cache_write_per_mtok=price.cache_write_per_mtok,
        ),
        circuit_state=_CIRCUIT[state],
        emulated=emulated,
    )


_TASKS_TO_PB = {task: value for value, task in _TASKS.items()}


def _period_to_pb(usage: PeriodUsage) -> pb.PeriodUsage:
    return pb.PeriodUsage(
        period=usage.period,
        cost_usd=usage.cost_usd,
        tokens=usage.tokens,
        requests=usage.requests,
        held_usd=usage.held_usd,
    )


def tenant_usage_to_pb(
    usage: TenantUsage, limits: Limits, tenant: TenantConfig | None
) -> pb.GetUsageResponse:
    """A tenant's usage and limits as the GetUsage reply."""
    return pb.GetUsageResponse(
        tenant=usage.tenant,
        day=_period_to_pb(usage.day),
        month=_period_to_pb(usage.month),
        open_streams=usage.streams,
        limits=pb.TenantLimits(
            requests_per_minute=limits.requests_per_minute or 0,
            tokens_per_minute=limits.tokens_per_minute or 0,
            max_concurrent_streams=limits.max_concurrent_streams or 0,
            budget_usd_per_day=limits.budget_usd_per_day or 0.0,
            budget_usd_per_month=limits.budget_usd_per_month or 0.0,
            allowed_models=list(tenant.allowed_models) if tenant else [],
            allowed_tasks=[_TASKS_TO_PB[t] for t in tenant.allowed_tasks] if tenant else [],
        ),
    )
