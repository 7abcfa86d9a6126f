"""The ModelRouterService servicer: request in, domain stages, response out.

Handlers do one job: call the stages. Validation and every proto message live in
`convert`; the work of a request in `generation.Generation`. Errors are raised, not
caught: the error boundary (`api.boundary`), in front of every RPC, turns each into its
status, logs the RPC once and counts it. A handler tells the boundary the request id
and who answered (`report_request_id`, `report_answer`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_server.api import convert
from modelrouter_server.api.auth import current_tenant
from modelrouter_server.api.boundary import (
    large_request,
    report_answer,
    report_request_id,
)
from modelrouter_server.api.offload import OFF_LOOP_BYTES, off_loop_if, text_size
from modelrouter_server.api.read_ahead import END, ReadAhead
from modelrouter_server.api.reply_encoding import encode_conversation_reply
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import Conversation, ConversationService, TokenCounter
from modelrouter_server.domain import GenerateOptions, TextChunk
from modelrouter_server.errors import RequestError
from modelrouter_server.generation import Generation, ReplayedTurn, StreamClosed
from modelrouter_server.observability.summary import Answer
from modelrouter_server.resilience import BreakerRegistry, ChainFinished
from modelrouter_server.tenancy.gate import TenantGate
from modelrouter_server.validation import (
    check_id,
    decode_message_page_token,
    message_page_size,
    page_size,
)

Context = grpc.aio.ServicerContext[Any, Any]


# The response wraps the conversation in one length-delimited field: a tag byte and a
# length of at most 5 bytes (varint), kept out of the page's byte budget.
_WRAPPER_BYTES = 6


@dataclass(frozen=True, slots=True)
class ServicerDeps:
    config: RouterConfig
    generation: Generation
    counter: TokenCounter
    conversations: ConversationService
    breakers: BreakerRegistry
    emulated_providers: frozenset[str]
    gate: TenantGate | None = None
    """Per-tenant limits and usage; None: no ledger (GetUsage is then UNIMPLEMENTED)."""


class ModelRouterServicer(pb_grpc.ModelRouterServiceServicer):
    def __init__(self, deps: ServicerDeps) -> None:
        self._d = deps

    def _tenant(self) -> str:
        """The caller's tenant (set by the API key interceptor; else the default)."""
        return current_tenant(self._d.config.auth.default_tenant)

    def _with_tenant(self, options: GenerateOptions) -> GenerateOptions:
        return dataclasses.replace(options, tenant=self._tenant())

    def _deadline(self, context: Context) -> float:
        default = self._d.config.resilience.default_deadline_s
        remaining = context.time_remaining()
        budget = default if remaining is None else min(remaining, default)
        return time.monotonic() + budget

    async def _options(self, request: convert.AnyGenerateRequest) -> GenerateOptions:
        limits = self._d.config.limits
        return await off_loop_if(large_request(), convert.options_from_pb, request, limits)

    # -- generate -----------------------------------------------------------------------

    async def Generate(self, request: pb.GenerateRequest, context: Context) -> pb.GenerateResponse:
        # Reported once validated: a caller's id of any length never reaches the log.
        options = self._with_tenant(await self._options(request))
        report_request_id(options.request_id)
        outcome = await self._d.generation.generate(options, deadline=self._deadline(context))
        if isinstance(outcome, ReplayedTurn):
            report_answer(Answer(replayed=True))
            return convert.replayed_response_pb(
                outcome.request_id, outcome.text, outcome.tool_calls
            )
        result = outcome.result
        report_answer(
            Answer(
                model=result.candidate.model_id,
                provider=result.candidate.provider,
                attempts=result.attempts,
                usage=result.usage,
                cost_usd=result.cost_usd,
                fallback=result.fallback,
                finish_reason=result.completion.finish_reason,
                refusal=result.completion.refusal,
                replayed=outcome.replayed_text is not None,
            )
        )
        return convert.generate_response_to_pb(outcome, options.request_id)

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: Context
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        # Reported once validated: a caller's id of any length never reaches the log.
        options = self._with_tenant(await self._options(request))
        report_request_id(options.request_id)
        events = self._d.generation.stream(options, deadline=self._deadline(context))
        finished: ChainFinished | None = None
        # One message for the text deltas at hand, refilled: grpc.aio serializes a yielded
        # message before it asks this generator for the next (the interceptors in front
        # pass it straight through), so refilling it afterwards is safe and saves two
        # protobuf objects per message.
        text_delta = pb.GenerateStreamResponse(delta=pb.TextDelta())
        async with aclosing(ReadAhead(events)) as ahead:
            while (event := await ahead.next()) is not END:
                if type(event) is TextChunk:
                    text_delta.delta.text = _joined_text(event.text, ahead)
                    await ahead.before_write()
                    with ahead.writing():
                        yield text_delta
                elif isinstance(event, ReplayedTurn):
                    report_answer(Answer(replayed=True))
                    for replayed in convert.replayed_stream_pb(
                        event.request_id, event.text, event.tool_calls
                    ):
                        yield replayed
                elif isinstance(event, ChainFinished):
                    # The finish goes out after StreamClosed, once the turn is stored.
                    finished = event
                elif isinstance(event, StreamClosed):
                    if finished is not None:
                        report_answer(_streamed_answer(finished))
                        yield convert.stream_finish_to_pb(finished, event)
                else:
                    response = convert.stream_event_to_pb(event, options.request_id)
                    if response is not None:
                        yield response

    # -- models and tokens --------------------------------------------------------------

    async def CountTokens(
        self, request: pb.CountTokensRequest, context: Context
    ) -> pb.CountTokensResponse:
        limits = self._d.config.limits
        check_id(request.conversation_id, limits, field="conversation_id")
        messages = convert.messages_from_pb(request.messages, limits)
        if request.conversation_id:
            turn = await self._d.conversations.open_turn(
                request.conversation_id, messages, tenant=self._tenant()
            )
            messages = turn.messages
        if not messages:
            raise RequestError("messages", "must not be empty")
        name = request.model.strip() or self._d.config.routing.default[0]
        model_id = self._d.counter.resolve(name)
        if self._d.gate is not None:
            # Counting may call the model's provider (Anthropic's count endpoint).
            self._d.gate.check_model(self._tenant(), model_id)
        count = await self._d.counter.count(model_id, messages)
        model = self._d.config.models[model_id]
        report_answer(Answer(model=model_id, provider=model.provider))
        return convert.count_to_pb(count, model_id, model.context_window)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                convert.model_info_to_pb(
                    model_id,
                    m,
                    self._d.breakers.state(m.provider, model_id),
                    emulated=m.provider in self._d.emulated_providers,
                )
                for model_id, m in self._d.config.models.items()
            ]
        )

    # -- conversations ------------------------------------------------------------------

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Context
    ) -> pb.CreateConversationResponse:
        limits = self._d.config.limits
        messages, metadata = await off_loop_if(
            large_request(), convert.create_conversation_from_pb, request, limits
        )
        conversation = await self._d.conversations.create(messages, metadata, tenant=self._tenant())
        return await _conversation_reply(
            pb.CreateConversationResponse,
            conversation,
            page_size=limits.max_message_page_size,
            max_bytes=limits.max_response_bytes - _WRAPPER_BYTES,
        )

    async def GetConversation(
        self, request: pb.GetConversationRequest, context: Context
    ) -> pb.GetConversationResponse:
        limits = self._d.config.limits
        check_id(request.id, limits, field="id", required=True)
        size = message_page_size(request.message_page_size, limits)
        token = request.message_page_token
        first_seq = decode_message_page_token(token) if token else 0
        conversation = await self._d.conversations.get(request.id, tenant=self._tenant())
        return await _conversation_reply(
            pb.GetConversationResponse,
            conversation,
            first_seq=first_seq,
            page_size=size,
            max_bytes=limits.max_response_bytes - _WRAPPER_BYTES,
        )

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Context
    ) -> pb.ListConversationsResponse:
        size = page_size(request.page_size, self._d.config.limits)
        page = await self._d.conversations.list(size, request.page_token, tenant=self._tenant())
        return pb.ListConversationsResponse(
            conversations=[convert.conversation_to_pb(c) for c in page.conversations],
            next_page_token=page.next_page_token,
        )

    async def DeleteConversation(
        self, request: pb.DeleteConversationRequest, context: Context
    ) -> pb.DeleteConversationResponse:
        check_id(request.id, self._d.config.limits, field="id", required=True)
        await self._d.conversations.delete(request.id, tenant=self._tenant())
        return pb.DeleteConversationResponse()

    # -- usage --------------------------------------------------------------------------

    async def GetUsage(self, request: pb.GetUsageRequest, context: Context) -> pb.GetUsageResponse:
        gate = self._d.gate
        if gate is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "usage is not recorded")
        assert gate is not None  # abort raised
        tenant = self._tenant()
        usage = await gate.usage(tenant)
        return convert.tenant_usage_to_pb(
            usage, gate.limits(tenant), self._d.config.tenants.get(tenant)
        )


_Reply = TypeVar("_Reply", pb.CreateConversationResponse, pb.GetConversationResponse)


async def _conversation_reply(
    reply: type[_Reply],
    conversation: Conversation,
    *,
    first_seq: int = 0,
    page_size: int,
    max_bytes: int,
) -> _Reply:
    """The reply carrying a page of `conversation`. When its text is large, the reply is
    encoded off the loop thread, its large texts in slices (`reply_encoding`), and handed
    to grpc as bytes, which the boundary's serializer passes on."""
    if text_size(m.message for m in conversation.messages) >= OFF_LOOP_BYTES:
        encoded = await asyncio.to_thread(
            encode_conversation_reply,
            conversation,
            first_seq=first_seq,
            page_size=page_size,
            max_bytes=max_bytes,
        )
        return cast(_Reply, encoded)
    page = convert.conversation_to_pb(
        conversation, first_seq=first_seq, page_size=page_size, max_bytes=max_bytes
    )
    return reply(conversation=page)


def _joined_text(text: str, ahead: ReadAhead[Any]) -> str:
    """`text` and the text deltas right behind it that need no wait; the first other
    event is put back for the loop."""
    parts = [text]
    while type(event := ahead.take_ready()) is TextChunk:
        parts.append(event.text)
    if event is not None:
        ahead.put_back(event)
    return "".join(parts)  # one part: `text` itself, not a copy


def _streamed_answer(finished: ChainFinished) -> Answer:
    return Answer(
        model=finished.candidate.model_id,
        provider=finished.candidate.provider,
        attempts=finished.attempts,
        usage=finished.usage,
        cost_usd=finished.cost_usd,
        fallback=finished.fallback,
        resumed=bool(finished.resumed_at_chars),
        finish_reason=finished.finish_reason,
        refusal=finished.refusal,
    )
