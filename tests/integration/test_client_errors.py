"""The Python client raises typed exceptions carrying the decoded google.rpc details."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from modelrouter_client import (
    AsyncModelRouterClient,
    InvalidArgumentError,
    ModelRouterClient,
    NotFoundError,
    ResourceExhaustedError,
    pb,
    user,
)
from modelrouter_server.emulator import Behavior, Emulator


async def test_bad_request_is_invalid_argument_with_the_field_violation(
    router: AsyncModelRouterClient,
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await router.generate([user("hi")], model="gpt-4o-mini", max_output_tokens=-1)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_output_tokens" in error.field_violations
    assert error.reason  # an ErrorInfo rides along
    # Still the grpc exception callers already catch.
    assert isinstance(error, grpc.aio.AioRpcError)


async def test_stream_errors_are_typed_too(router: AsyncModelRouterClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        async for _ in router.stream("hi", model="no-such-model"):
            pass
    assert caught.value.reason == "MODEL_NOT_FOUND"
    assert "model" in caught.value.field_violations


async def test_rate_limited_carries_retry_delay(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    # Longer than the client's 30 s deadline: waiting cannot help, so the router answers
    # at once. (At exactly 30 s the outcome hung on which side saw the deadline first.)
    emulator.set_behavior("*", Behavior(error_status=429, retry_after_s=45))
    with pytest.raises(ResourceExhaustedError) as caught:
        await router.generate("hi", task=pb.TASK_CHAT)
    assert caught.value.retry_delay_s == 45.0
    assert caught.value.reason == "NO_CANDIDATES"


async def test_unknown_conversation_is_typed_not_found(router: AsyncModelRouterClient) -> None:
    with pytest.raises(NotFoundError):
        await router.get_conversation("no-such-conversation")


async def test_blocking_client_raises_the_same_types(router: AsyncModelRouterClient) -> None:
    def call() -> None:
        with ModelRouterClient(router.target, default_timeout=30) as client:
            client.generate([], model="gpt-4o-mini")

    # In a thread: the router serves on this test's event loop.
    with pytest.raises(InvalidArgumentError) as caught:
        await asyncio.to_thread(call)
    assert "messages" in caught.value.field_violations
