"""The ModelRouter servicer: proto in, domain stages, proto out.

Handlers stay thin: validation and conversion live in `convert`, the request's work in
`generation.Generation`, the status of every error in `status`. Each RPC logs one line
(request id, model, provider, attempts, latency, time to first token, tokens) and records
metrics.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import NoReturn

import grpc
import structlog
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_server.api import convert
from modelrouter_server.api.status import attempt_code, code_for, to_status
from modelrouter_server.attempts import AttemptRecord
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import ConversationService, CountMethod, TokenCounter
from modelrouter_server.domain import (
    FinishReason,
    Refusal,
    RefusalChunk,
    TextChunk,
    ThinkingChunk,
    Usage,
)
from modelrouter_server.errors import RequestError
from modelrouter_server.generation import Generation, ReplayedTurn, StreamClosed
from modelrouter_server.observability import Metrics
from modelrouter_server.resilience import (
    BreakerRegistry,
    ChainEvent,
    ChainFinished,
    ChainResumed,
    ChainStarted,
    CircuitState,
)
from modelrouter_server.validation import (
    check_id,
    decode_message_page_token,
    message_page_size,
    page_size,
)

log = structlog.get_logger(__name__)

_CIRCUIT = {
    CircuitState.CLOSED: pb.CIRCUIT_STATE_CLOSED,
    CircuitState.OPEN: pb.CIRCUIT_STATE_OPEN,
    CircuitState.HALF_OPEN: pb.CIRCUIT_STATE_HALF_OPEN,
}
_COUNT_METHOD = {
    CountMethod.EXACT_LOCAL: pb.COUNT_METHOD_EXACT_LOCAL,
    CountMethod.PROVIDER: pb.COUNT_METHOD_PROVIDER,
    CountMethod.ESTIMATE: pb.COUNT_METHOD_ESTIMATE,
}


@dataclass(frozen=True, slots=True)
class ServicerDeps:
    config: RouterConfig
    generation: Generation
    counter: TokenCounter
    conversations: ConversationService
    breakers: BreakerRegistry
    metrics: Metrics
    emulated_providers: frozenset[str]


def _attempts_pb(attempts: tuple[AttemptRecord, ...]) -> list[pb.Attempt]:
    return convert.attempts_to_pb(attempts, [attempt_code(a) for a in attempts])


@dataclass(slots=True)
class _StreamState:
    """What one GenerateStream call tracks across its events."""

    request_id: str
    started: float
    model: str = ""
    first_token: float | None = None
    last_token: float | None = None
    finished: ChainFinished | None = None


class ModelRouterServicer(pb_grpc.ModelRouterServicer):
    def __init__(self, deps: ServicerDeps) -> None:
        self._d = deps

    # -- helpers ------------------------------------------------------------------------

    def _deadline(self, context: grpc.aio.ServicerContext[object, object]) -> float:
        default = self._d.config.resilience.default_deadline_s
        remaining = context.time_remaining()
        budget = default if remaining is None else min(remaining, default)
        return time.monotonic() + budget

    async def _abort(
        self,
        context: grpc.aio.ServicerContext[object, object],
        exc: Exception,
        *,
        rpc: str,
        started: float,
        request_id: str = "",
    ) -> NoReturn:
        code = code_for(exc)
        status = to_status(exc)
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        if code is grpc.StatusCode.INTERNAL:
            log.error("rpc_failed", rpc=rpc, request_id=request_id, exc_info=exc)
        else:
            log.info(
                "rpc_failed",
                rpc=rpc,
                request_id=request_id,
                code=code.name,
                error=status.message,
                latency_ms=latency_ms,
            )
        self._d.metrics.observe_request(rpc=rpc, code=code, latency_s=latency_ms / 1000)
        await context.abort(
            code,
            status.message,
            trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
        )
        raise AssertionError("abort returned")  # pragma: no cover

    def _cancelled(self, rpc: str, started: float, request_id: str) -> None:
        """The caller cancelled or its deadline passed; the upstream call was closed by
        the cancellation unwinding through the chain and the provider stream."""
        latency_s = time.monotonic() - started
        log.info(
            "rpc_cancelled", rpc=rpc, request_id=request_id, latency_ms=round(latency_s * 1000, 1)
        )
        self._d.metrics.observe_request(rpc=rpc, code="CANCELLED", latency_s=latency_s)

    def _replayed(self, rpc: str, started: float, request_id: str) -> None:
        """A turn answered from the conversation: no model, attempts, tokens or cost."""
        latency_s = time.monotonic() - started
        log.info(
            "request_replayed",
            rpc=rpc,
            request_id=request_id,
            latency_ms=round(latency_s * 1000, 1),
        )
        self._d.metrics.observe_request(rpc=rpc, code="OK", latency_s=latency_s)

    def _finished(
        self,
        *,
        rpc: str,
        request_id: str,
        model: str,
        provider: str,
        attempts: list[pb.Attempt],
        usage: Usage,
        cost_usd: float,
        started: float,
        ttft_s: float | None,
        fallback: bool,
        resumed: bool,
        finish_reason: FinishReason,
        refusal: Refusal | None,
    ) -> None:
        latency_s = time.monotonic() - started
        log.info(
            "request_done",
            rpc=rpc,
            request_id=request_id,
            model=model,
            provider=provider,
            attempts=len(attempts),
            fallback=fallback,
            resumed=resumed,
            latency_ms=round(latency_s * 1000, 1),
            ttft_ms=None if ttft_s is None else round(ttft_s * 1000, 1),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            usage_method=usage.method.value,
            cost_usd=round(cost_usd, 6),
            finish_reason=finish_reason.value,
            refusal=refusal is not None,
            refusal_category=refusal.category if refusal else None,
        )
        metrics = self._d.metrics
        metrics.observe_request(
            rpc=rpc,
            code="OK",
            latency_s=latency_s,
            model=model,
            provider=provider,
            ttft_s=ttft_s,
            usage_input=usage.input_tokens,
            usage_output=usage.output_tokens,
            usage_reasoning=usage.reasoning_tokens,
            cost_usd=cost_usd,
            fallback=fallback,
            resumed=resumed,
        )
        metrics.observe_attempts(attempts)
        metrics.observe_finish(
            model=model,
            provider=provider,
            reason=finish_reason.value,
            refusal=refusal is not None,
            usage_method=usage.method.value,
        )

    # -- generate -----------------------------------------------------------------------

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.GenerateResponse:
        started = time.monotonic()
        request_id = request.request_id
        try:
            options = convert.options_from_pb(request, self._d.config.limits)
            request_id = options.request_id
            outcome = await self._d.generation.generate(options, deadline=self._deadline(context))
        except asyncio.CancelledError:
            self._cancelled("Generate", started, request_id)
            raise
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="Generate", started=started, request_id=request_id)
        if isinstance(outcome, ReplayedTurn):
            self._replayed("Generate", started, request_id)
            return convert.replayed_response_pb(outcome.request_id, outcome.text)
        result = outcome.result
        completion = result.completion
        attempts = _attempts_pb(result.attempts)
        self._finished(
            rpc="Generate",
            request_id=request_id,
            model=result.candidate.model_id,
            provider=result.candidate.provider,
            attempts=attempts,
            usage=result.usage,
            cost_usd=result.cost_usd,
            started=started,
            ttft_s=None,
            fallback=result.fallback,
            resumed=False,
            finish_reason=completion.finish_reason,
            refusal=completion.refusal,
        )
        return pb.GenerateResponse(
            text=completion.text if outcome.replayed_text is None else outcome.replayed_text,
            replayed=outcome.replayed_text is not None,
            model=result.candidate.model_id,
            provider=result.candidate.provider,
            finish_reason=convert.finish_reason_to_pb(completion.finish_reason),
            usage=convert.usage_to_pb(result.usage, result.cost_usd),
            attempts=attempts,
            fallback=result.fallback,
            request_id=request_id,
            thinking=completion.thinking,
            context=convert.context_report_to_pb(outcome.context),
            refusal=convert.refusal_to_pb(completion.refusal),
            provider_model=completion.provider_model,
            finish_detail=completion.finish_detail,
        )

    async def GenerateStream(  # type: ignore[override]  # an async generator handler
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> object:
        state = _StreamState(request_id=request.request_id, started=time.monotonic())
        try:
            options = convert.options_from_pb(request, self._d.config.limits)
            state.request_id = options.request_id
            events = self._d.generation.stream(options, deadline=self._deadline(context))
            with self._d.metrics.track_stream():
                async with aclosing(events):
                    async for event in events:
                        if isinstance(event, ReplayedTurn):
                            for replayed in convert.replayed_stream_pb(
                                event.request_id, event.text
                            ):
                                yield replayed
                            self._replayed("GenerateStream", state.started, state.request_id)
                            continue
                        response = self._stream_response(state, event)
                        if response is not None:
                            yield response
        except asyncio.CancelledError:
            self._cancelled("GenerateStream", state.started, state.request_id)
            raise
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(
                context,
                exc,
                rpc="GenerateStream",
                started=state.started,
                request_id=state.request_id,
            )

    def _stream_response(
        self, state: _StreamState, event: ChainEvent | StreamClosed
    ) -> pb.GenerateStreamResponse | None:
        """The message for one chain event (None for events the client does not see),
        keeping the timings the finish event and the metrics report."""
        if isinstance(event, TextChunk):
            now = time.monotonic()
            if state.first_token is None:
                state.first_token = now
            elif state.last_token is not None:
                self._d.metrics.observe_inter_token(state.model, now - state.last_token)
            state.last_token = now
            return pb.GenerateStreamResponse(delta=pb.TextDelta(text=event.text))
        if isinstance(event, ThinkingChunk):
            return pb.GenerateStreamResponse(thinking_delta=pb.ThinkingDelta(text=event.text))
        if isinstance(event, RefusalChunk):
            return pb.GenerateStreamResponse(refusal_delta=pb.RefusalDelta(text=event.text))
        if isinstance(event, ChainStarted):
            state.model = event.candidate.model_id
            return pb.GenerateStreamResponse(
                start=pb.StreamStart(
                    model=event.candidate.model_id,
                    provider=event.candidate.provider,
                    request_id=state.request_id,
                )
            )
        if isinstance(event, ChainResumed):
            state.model = event.candidate.model_id
            return pb.GenerateStreamResponse(
                resume=pb.StreamResume(
                    model=event.candidate.model_id,
                    provider=event.candidate.provider,
                    resumed_at_char=event.at_char,
                    reason=event.reason,
                )
            )
        if isinstance(event, ChainFinished):
            # The finish goes out after StreamClosed, once the turn is stored.
            state.finished = event
            return None
        if state.finished is None:
            return None
        return pb.GenerateStreamResponse(
            finish=self._finish_pb(
                state.finished, event, state.request_id, state.started, state.first_token
            )
        )

    def _finish_pb(
        self,
        finished: ChainFinished,
        closed: StreamClosed,
        request_id: str,
        started: float,
        first_token: float | None,
    ) -> pb.StreamFinish:
        attempts = _attempts_pb(finished.attempts)
        resumed = bool(finished.resumed_at_chars)
        self._finished(
            rpc="GenerateStream",
            request_id=request_id,
            model=finished.candidate.model_id,
            provider=finished.candidate.provider,
            attempts=attempts,
            usage=finished.usage,
            cost_usd=finished.cost_usd,
            started=started,
            ttft_s=None if first_token is None else first_token - started,
            fallback=finished.fallback,
            resumed=resumed,
            finish_reason=finished.finish_reason,
            refusal=finished.refusal,
        )
        return pb.StreamFinish(
            finish_reason=convert.finish_reason_to_pb(finished.finish_reason),
            usage=convert.usage_to_pb(finished.usage, finished.cost_usd),
            attempts=attempts,
            model=finished.candidate.model_id,
            provider=finished.candidate.provider,
            fallback=finished.fallback,
            resumed=resumed,
            resumed_at_chars=list(finished.resumed_at_chars),
            context=convert.context_report_to_pb(closed.context),
            refusal=convert.refusal_to_pb(finished.refusal),
            provider_model=finished.provider_model,
            finish_detail=finished.finish_detail,
        )

    # -- models and tokens --------------------------------------------------------------

    async def CountTokens(
        self, request: pb.CountTokensRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.CountTokensResponse:
        started = time.monotonic()
        try:
            limits = self._d.config.limits
            check_id(request.conversation_id, limits, field="conversation_id")
            messages = convert.messages_from_pb(request.messages, limits)
            if request.conversation_id:
                turn = await self._d.conversations.open_turn(request.conversation_id, messages)
                messages = turn.messages
            if not messages:
                raise RequestError("messages", "must not be empty")
            name = request.model.strip() or self._d.config.routing.default[0]
            model_id = self._d.counter.resolve(name)
            count = await self._d.counter.count(model_id, messages)
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="CountTokens", started=started)
        self._d.metrics.observe_request(
            rpc="CountTokens", code="OK", latency_s=time.monotonic() - started, model=model_id
        )
        return pb.CountTokensResponse(
            input_tokens=count.tokens,
            model=model_id,
            method=_COUNT_METHOD[count.method],
            context_window=self._d.config.models[model_id].context_window,
        )

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ListModelsResponse:
        models = []
        for model_id, m in self._d.config.models.items():
            state = self._d.breakers.state(m.provider, model_id)
            models.append(
                pb.ModelInfo(
                    id=model_id,
                    provider=m.provider,
                    aliases=list(m.aliases),
                    context_window=m.context_window,
                    max_output_tokens=m.max_output_tokens,
                    capabilities=pb.Capabilities(
                        streaming=m.capabilities.streaming,
                        thinking=m.capabilities.thinking,
                        reasoning_effort=m.capabilities.reasoning_effort,
                        temperature=m.capabilities.temperature,
                    ),
                    pricing=pb.Pricing(
                        input_per_mtok=m.pricing.input_per_mtok,
                        output_per_mtok=m.pricing.output_per_mtok,
                        cache_read_per_mtok=m.pricing.cache_read_per_mtok,
                        cache_write_per_mtok=m.pricing.cache_write_per_mtok,
                    ),
                    circuit_state=_CIRCUIT[state],
                    emulated=m.provider in self._d.emulated_providers,
                )
            )
        return pb.ListModelsResponse(models=models)

    # -- conversations ------------------------------------------------------------------

    async def CreateConversation(
        self,
        request: pb.CreateConversationRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.Conversation:
        started = time.monotonic()
        try:
            messages, metadata = convert.create_conversation_from_pb(request, self._d.config.limits)
            conversation = await self._d.conversations.create(messages, metadata)
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="CreateConversation", started=started)
        limits = self._d.config.limits
        return convert.conversation_to_pb(
            conversation,
            page_size=limits.max_message_page_size,
            max_bytes=limits.max_response_bytes,
        )

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.Conversation:
        started = time.monotonic()
        try:
            limits = self._d.config.limits
            check_id(request.id, limits, field="id", required=True)
            page_size = message_page_size(request.message_page_size, limits)
            token = request.message_page_token
            first_seq = decode_message_page_token(token) if token else 0
            conversation = await self._d.conversations.get(request.id)
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="GetConversation", started=started)
        return convert.conversation_to_pb(
            conversation,
            first_seq=first_seq,
            page_size=page_size,
            max_bytes=limits.max_response_bytes,
        )

    async def ListConversations(
        self,
        request: pb.ListConversationsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ListConversationsResponse:
        started = time.monotonic()
        try:
            size = page_size(request.page_size, self._d.config.limits)
            page = await self._d.conversations.list(size, request.page_token)
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="ListConversations", started=started)
        return pb.ListConversationsResponse(
            conversations=[convert.conversation_to_pb(c) for c in page.conversations],
            next_page_token=page.next_page_token,
        )

    async def DeleteConversation(
        self,
        request: pb.DeleteConversationRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.DeleteConversationResponse:
        started = time.monotonic()
        try:
            check_id(request.id, self._d.config.limits, field="id", required=True)
            await self._d.conversations.delete(request.id)
        except Exception as exc:  # every failure leaves as a status, none as UNKNOWN
            await self._abort(context, exc, rpc="DeleteConversation", started=started)
        return pb.DeleteConversationResponse()
