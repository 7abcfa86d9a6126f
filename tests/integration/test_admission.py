"""Admission control through real gRPC: calls past the server's limits are refused at
once with RESOURCE_EXHAUSTED and a RetryInfo (never queued, never CANCELLED), while the
health service keeps answering."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_server.api.descriptors import (
    DescriptorBudgetError,
    ensure_descriptors,
    needed_descriptors,
)
from modelrouter_server.config import ConfigError, load_config
from modelrouter_server.emulator import Behavior, Emulator
from pydantic import ValidationError

from .conftest import StartRouter, make_config
from .status_details import details_of

GPT = "gpt-4o-mini-2024-07-18"
# Each holder's upstream sends one token, then stalls: the stream stays open.
_HOLD = Behavior(output_tokens=40, stall_after_tokens=1, stall_s=3600)
_PATIENT = {"inter_token_timeout_s": 600.0, "ttft_timeout_s": 600.0}


async def _hold_streams(
    client: AsyncModelRouterClient, count: int
) -> list[AsyncIterator[pb.GenerateStreamResponse]]:
    """`count` streams, each admitted and past its first token (so counted in flight)."""
    holders = []
    for _ in range(count):
        stream = client.stream("Go on.", model=GPT, disable_fallback=True, timeout=600)
        kinds = [(await anext(stream)).WhichOneof("event") for _ in range(2)]
        assert kinds == ["start", "delta"]
        holders.append(stream)
    return holders


async def _release(holders: list[AsyncIterator[pb.GenerateStreamResponse]]) -> None:
    for stream in holders:
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator


def _retry_delay_s(error: grpc.aio.AioRpcError) -> float:
    (retry,) = details_of(error, error_details_pb2.RetryInfo)
    nanoseconds: int = retry.retry_delay.ToNanoseconds()
    return nanoseconds / 1e9


async def test_calls_over_the_rpc_limit_get_resource_exhausted_with_retry_info(
    start_router: StartRouter, emulator: Emulator
) -> None:
    emulator.set_behavior("*", _HOLD)
    client = await start_router(
        admission={"max_concurrent_rpcs": 3, "max_concurrent_streams": 3, "retry_after_s": 2.5},
        resilience=_PATIENT,
    )
    holders = await _hold_streams(client, 3)
    try:
        for call in (client.list_models(), client.count_tokens("Hello", model=GPT)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            error = caught.value
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit of 3 concurrent RPCs" in (error.details() or "")
            assert _retry_delay_s(error) == 2.5
            (info,) = details_of(error, error_details_pb2.ErrorInfo)
            assert info.reason == "RPC_LIMIT"
        # Health is not counted: a load balancer can always ask.
        health = health_pb2_grpc.HealthStub(client._channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await _release(holders)


async def test_streams_over_the_stream_limit_are_refused_while_unary_calls_still_run(
    start_router: StartRouter, emulator: Emulator
) -> None:
    emulator.set_behavior("*", _HOLD)
    client = await start_router(
        admission={"max_concurrent_rpcs": 10, "max_concurrent_streams": 2},
        resilience=_PATIENT,
    )
    holders = await _hold_streams(client, 2)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await anext(client.stream("One more.", model=GPT, timeout=30))
        error = caught.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 2 concurrent streams" in (error.details() or "")
        assert _retry_delay_s(error) == 1.0
        models = await client.list_models()
        assert GPT in {m.id for m in models}
    finally:
        await _release(holders)


async def test_a_stream_limit_above_the_rpc_limit_is_a_config_error() -> None:
    with pytest.raises((ValidationError, ConfigError), match="max_concurrent_streams"):
        make_config(admission={"max_concurrent_rpcs": 2, "max_concurrent_streams": 3})
    assert load_config(None).admission.max_concurrent_rpcs >= 1


def test_start_up_refuses_a_config_that_needs_more_descriptors_than_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard descriptor limit to exceed")
    config = make_config(admission={"max_client_connections": hard + 1})
    with pytest.raises(DescriptorBudgetError) as caught:
        ensure_descriptors(config)
    message = str(caught.value)
    assert "\n" not in message
    # Pools sized from the admission limit share it: counted once between them.
    pools = config.admission.max_concurrent_rpcs
    assert f"may open {hard + 1 + pools + 128} file descriptors" in message
    assert "ulimit -n" in message
    # A config that fits is accepted, with the soft limit raised to cover it.
    budget = ensure_descriptors(make_config())
    assert budget.limit >= budget.needed


def test_a_provider_pool_holds_one_connection_per_admitted_rpc_unless_set() -> None:
    config = make_config(admission={"max_concurrent_rpcs": 321, "max_concurrent_streams": 300})
    provider = next(iter(config.providers.values()))
    assert config.pool_size(provider) == 321
    explicit = provider.model_copy(update={"max_connections": 7})
    assert config.pool_size(explicit) == 7
    budget = needed_descriptors(config)
    assert budget == config.admission.max_client_connections + 321 + 128
    # A provider with a pool of its own adds it; the others still share the admission limit.
    name = next(iter(config.providers))
    sized = config.model_copy(update={"providers": {**config.providers, name: explicit}})
    assert needed_descriptors(sized) == config.admission.max_client_connections + 7 + 321 + 128


@pytest.mark.load
async def test_a_burst_far_over_the_limit_is_served_or_refused_never_cancelled(
    start_router: StartRouter, emulator: Emulator
) -> None:
    # Upstream answers take a moment, so the burst is in flight at once.
    emulator.set_behavior("*", Behavior(latency_s=1.0))
    client = await start_router(
        admission={"max_concurrent_rpcs": 100, "max_concurrent_streams": 100}
    )
    codes: list[grpc.StatusCode] = []

    async def one() -> None:
        try:
            await client.generate("Hello", model=GPT, disable_fallback=True, timeout=120)
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())

    await asyncio.gather(*(one() for _ in range(1_500)))
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > 0
    assert codes.count(grpc.StatusCode.OK) >= 100
