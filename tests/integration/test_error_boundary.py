"""The error boundary on a real grpc.aio server, in front of a servicer that misbehaves on
purpose: a bug, a refusal by an inner interceptor, a cancelled stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_server.api.boundary import ErrorBoundary
from modelrouter_server.observability import Metrics
from prometheus_client.parser import text_string_to_metric_families

from .logcapture import captured_log

if TYPE_CHECKING:
    from modelrouter.v1.modelrouter_pb2_grpc import ModelRouterServiceAsyncStub

Context = grpc.aio.ServicerContext[Any, Any]


class _Misbehaving(pb_grpc.ModelRouterServiceServicer):
    def __init__(self) -> None:
        self.stream_ended = asyncio.Event()

    async def Generate(self, request: pb.GenerateRequest, context: Context) -> Any:
        raise ZeroDivisionError("a bug with a detail the caller must not see")

    async def GenerateStream(
        self, request: pb.GenerateStreamRequest, context: Context
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        try:
            yield pb.GenerateStreamResponse(delta=pb.TextDelta(text="one"))
            await asyncio.Event().wait()  # until the caller cancels
        finally:
            self.stream_ended.set()

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> Any:
        return pb.ListModelsResponse()

    async def GetConversation(self, request: pb.GetConversationRequest, context: Context) -> Any:
        context.set_code(grpc.StatusCode.NOT_FOUND)
        context.set_details("set, not raised")
        return pb.Conversation()

    # Never reached: the interceptor behind the boundary answers these.
    async def CountTokens(self, request: pb.CountTokensRequest, context: Context) -> Any:
        raise AssertionError("refused before the handler")

    async def DeleteConversation(
        self, request: pb.DeleteConversationRequest, context: Context
    ) -> Any:
        raise AssertionError("refused before the handler")

    async def CreateConversation(
        self, request: pb.CreateConversationRequest, context: Context
    ) -> Any:
        raise AssertionError("not called")

    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: Context
    ) -> Any:
        raise AssertionError("not called")

    async def GetUsage(self, request: pb.GetUsageRequest, context: Context) -> Any:
        raise AssertionError("not called")


class _RefuseCountTokens(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Stands in for an admission interceptor behind the boundary."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        if details.method.endswith("/CountTokens"):

            async def refuse(request: Any, context: Context) -> Any:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too busy")

            return grpc.unary_unary_rpc_method_handler(refuse)
        if details.method.endswith("/DeleteConversation"):
            raise RuntimeError("the interceptor itself broke")
        return await continuation(details)


Served = tuple["ModelRouterServiceAsyncStub", _Misbehaving, Metrics]


def _counts(metrics: Metrics) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == "modelrouter_requests_total":
                out[(s.labels["rpc"], s.labels["code"])] = s.value
    return out


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    metrics = Metrics()
    servicer = _Misbehaving()
    server = grpc.aio.server(
        interceptors=[ErrorBoundary(metrics, max_request_bytes=8 << 20), _RefuseCountTokens()]
    )
    pb_grpc.add_ModelRouterServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield (
            pb_grpc.ModelRouterServiceStub(channel),
            servicer,
            metrics,
        )
    await server.stop(0)


async def test_a_bug_is_internal_with_the_traceback_in_the_json_log_only(
    served: Served,
) -> None:
    stub, _, metrics = served
    with captured_log() as log, pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Generate(pb.GenerateRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"
    (event,) = log.events()
    assert event["event"] == "request_done" and event["level"] == "error"
    assert event["code"] == "INTERNAL"
    assert "ZeroDivisionError: a bug with a detail" in event["exception"]
    assert "Traceback" in event["exception"]
    assert _counts(metrics)[("Generate", "INTERNAL")] == 1


async def test_every_outcome_is_logged_once_and_counted(
    served: Served,
) -> None:
    stub, servicer, metrics = served
    with captured_log() as log:
        await stub.ListModels(pb.ListModelsRequest(), timeout=5)
        for call, code in (
            (stub.CountTokens(pb.CountTokensRequest(), timeout=5), "RESOURCE_EXHAUSTED"),
            (stub.GetConversation(pb.GetConversationRequest(), timeout=5), "NOT_FOUND"),
            (stub.DeleteConversation(pb.DeleteConversationRequest(), timeout=5), "INTERNAL"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code().name == code
        stream = stub.GenerateStream(pb.GenerateStreamRequest(), timeout=5)
        first = await stream.read()
        assert isinstance(first, pb.GenerateStreamResponse) and first.delta.text == "one"
        stream.cancel()
        await servicer.stream_ended.wait()
    counts = _counts(metrics)
    assert counts == {
        ("ListModels", "OK"): 1,
        ("CountTokens", "RESOURCE_EXHAUSTED"): 1,
        ("GetConversation", "NOT_FOUND"): 1,
        ("DeleteConversation", "INTERNAL"): 1,
        ("GenerateStream", "CANCELLED"): 1,
    }
    done = [(e["rpc"], e["code"]) for e in log.events() if e["event"] == "request_done"]
    assert sorted(done) == sorted(counts)
