"""The asyncio client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import grpc
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc

from modelrouter_client._request import (
    GenerateOptions,
    as_messages,
    generate_request,
    generate_stream_request,
)
from modelrouter_client.connect import TlsFiles, aio_channel
from modelrouter_client.errors import typed_errors, typed_stream
from modelrouter_client.tools import ToolFunction, ToolRun, run_tool_loop

Metadata = Sequence[tuple[str, str]]


class AsyncModelRouterClient:
    """A modelrouter client for asyncio agents.

    Every call takes `timeout` (seconds; becomes the gRPC deadline, which the router
    honours end to end) and `metadata`. Errors arrive as typed `ModelRouterError`s
    (`InvalidArgumentError`, `NotFoundError`, ...; still `grpc.aio.AioRpcError`s) with the
    router's status code, a message naming the field at fault and the decoded details.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.aio.Channel | None = None,
        default_timeout: float | None = 300.0,
        tls: TlsFiles | None = None,
        api_key: str | None = None,
    ) -> None:
        """`tls`: connect with TLS (a client certificate in it for mTLS); `api_key`: sent
        as `authorization: Bearer <key>` on every call. Both are ignored with `channel`."""
        self.target = target
        self._channel = channel or aio_channel(target, tls=tls, api_key=api_key)
        self._stub = pb_grpc.ModelRouterServiceStub(self._channel)
        self._default_timeout = default_timeout

    async def __aenter__(self) -> AsyncModelRouterClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(grace=None)

    def _timeout(self, timeout: float | None) -> float | None:
        return self._default_timeout if timeout is None else timeout

    async def generate(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        timeout: float | None = None,
        call_metadata: Metadata = (),
        **options: Unpack[GenerateOptions],
    ) -> pb.GenerateResponse:
        """One complete reply."""
        request = generate_request(messages, **options)
        with typed_errors():
            return await self._stub.Generate(
                request, timeout=self._timeout(timeout), metadata=tuple(call_metadata)
            )

    async def run_tools(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        tools: Mapping[str, ToolFunction],
        definitions: Sequence[pb.Tool] = (),
        max_turns: int = 8,
        **options: Any,
    ) -> ToolRun:
        """Generate, run every tool the model calls (`tools`: name -> function, sync or
        async, called with the arguments as keywords), send the results back, and repeat
        until a reply calls no tool; at most `max_turns` replies (`ToolLoopLimit`).
        `options` are `generate`'s (model, task, ...).
        A tool that raises is reported to the model as an error result. `definitions`
        overrides the tool definitions derived from the functions' signatures."""
        return await run_tool_loop(
            self.generate,
            messages,
            tools,
            definitions=definitions,
            max_turns=max_turns,
            options=options,
        )

    async def stream(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        timeout: float | None = None,
        call_metadata: Metadata = (),
        **options: Unpack[GenerateOptions],
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        """The reply as events: start, deltas (and resume), finish.

        Breaking out of the loop (or cancelling the task) cancels the RPC, and the router
        closes the upstream provider request.
        """
        request = generate_stream_request(messages, **options)
        call = self._stub.GenerateStream(
            request, timeout=self._timeout(timeout), metadata=tuple(call_metadata)
        )
        try:
            async for event in typed_stream(call.__aiter__()):
                yield event
        finally:
            call.cancel()

    async def count_tokens(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        model: str = "",
        conversation_id: str = "",
        timeout: float | None = None,
    ) -> pb.CountTokensResponse:
        request = pb.CountTokensRequest(
            messages=as_messages(messages), model=model, conversation_id=conversation_id
        )
        with typed_errors():
            return await self._stub.CountTokens(request, timeout=self._timeout(timeout))

    async def list_models(self, *, timeout: float | None = None) -> list[pb.ModelInfo]:
        with typed_errors():
            response = await self._stub.ListModels(
                pb.ListModelsRequest(), timeout=self._timeout(timeout)
            )
        return list(response.models)

    async def create_conversation(
        self,
        messages: Sequence[pb.Message] = (),
        *,
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> pb.Conversation:
        """A new conversation, with its opening messages."""
        request = pb.CreateConversationRequest(messages=list(messages), metadata=metadata or {})
        with typed_errors():
            response = await self._stub.CreateConversation(request, timeout=self._timeout(timeout))
        return response.conversation

    async def get_conversation(
        self, conversation_id: str, *, timeout: float | None = None
    ) -> pb.Conversation:
        """The conversation with the first page of its messages
        (`next_message_page_token` leads on)."""
        with typed_errors():
            response = await self._stub.GetConversation(
                pb.GetConversationRequest(id=conversation_id), timeout=self._timeout(timeout)
            )
        return response.conversation

    async def list_conversations(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> pb.ListConversationsResponse:
        request = pb.ListConversationsRequest(page_size=page_size, page_token=page_token)
        with typed_errors():
            return await self._stub.ListConversations(request, timeout=self._timeout(timeout))

    async def delete_conversation(
        self, conversation_id: str, *, timeout: float | None = None
    ) -> None:
        with typed_errors():
            await self._stub.DeleteConversation(
                pb.DeleteConversationRequest(id=conversation_id), timeout=self._timeout(timeout)
            )

    async def get_usage(self, *, timeout: float | None = None) -> pb.GetUsageResponse:
        """The calling tenant's spend, tokens and requests today and this month (UTC),
        and its limits."""
        with typed_errors():
            return await self._stub.GetUsage(pb.GetUsageRequest(), timeout=self._timeout(timeout))
