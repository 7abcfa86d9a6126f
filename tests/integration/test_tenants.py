"""API keys, tenants, permissions, limits and budgets, through real gRPC.

Keys are made at test time; no log line or error any test here produces may contain one
(checked after every test, on the captured stdout and stderr of the whole process).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from context.conftest import running_redis
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_client import AsyncModelRouterClient, system
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import ScriptedToolCall
from modelrouter_server.tenancy import key_digest, new_key
from modelrouter_testsupport.router_process import modelrouter_command

from .conftest import StartRouter, make_config
from .logcapture import captured_log
from .status_details import details_of

ALICE = new_key()
BOB = new_key()
WRONG = new_key()  # well-formed, configured for nobody
KEYS = (ALICE, BOB, WRONG)
GPT = "gpt-4o-mini-2024-07-18"
SERVICE = pb.DESCRIPTOR.services_by_name["ModelRouterService"]


def tenants(**alice: Any) -> dict[str, Any]:
    """Config sections: api_key auth, alice (with `alice` settings) and bob."""
    return {
        "auth": {"mode": "api_key", "default_tenant": "alice"},
        "tenants": {
            "alice": {"api_key_sha256": key_digest(ALICE), **alice},
            "bob": {"api_key_sha256": [key_digest(new_key()), key_digest(BOB)]},
        },
    }


@pytest.fixture
def own_redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server of the test's own, so tenant usage and limits start from nothing
    (the module's shared one would carry them over from other tests)."""
    with running_redis(tmp_path) as redis:
        yield redis.url


@pytest.fixture(autouse=True)
def no_key_in_any_output(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    out, err = capfd.readouterr()
    for key in KEYS:
        assert key not in out and key not in err
        assert key_digest(key) not in out and key_digest(key) not in err


def assert_no_key(error: grpc.aio.AioRpcError) -> None:
    text = f"{error.details()} {error.trailing_metadata()} {error.initial_metadata()}"
    assert not any(key in text for key in KEYS)


Connect = Callable[[str | None], AsyncModelRouterClient]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[str, str | None], AsyncModelRouterClient]]:
    """A client of a router's target with an API key (or none)."""
    made: list[AsyncModelRouterClient] = []

    def make(target: str, key: str | None) -> AsyncModelRouterClient:
        client = AsyncModelRouterClient(target, api_key=key, default_timeout=30)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def _status(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert_no_key(error)
        return error.code()
    return grpc.StatusCode.OK


async def _call(
    channel: grpc.aio.Channel, method: Any, metadata: tuple[tuple[str, str], ...]
) -> tuple[grpc.StatusCode, str]:
    """Call `method` of the service with an empty request and `metadata`."""
    request_class = getattr(pb, method.input_type.name)
    response_class = getattr(pb, method.output_type.name)
    path = f"/{SERVICE.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )
            async for _ in stream(request_class(), metadata=metadata, timeout=30):
                pass
        else:
            unary = channel.unary_unary(
                path,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            )
            await unary(request_class(), metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as error:
        assert_no_key(error)
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


async def test_every_rpc_refuses_a_missing_or_wrong_key_alike(
    start_router: StartRouter,
) -> None:
    plain = await start_router(**tenants())
    refusals = (
        (),
        (("authorization", f"Bearer {WRONG}"),),
        (("x-api-key", WRONG),),
        (("authorization", WRONG),),  # no scheme
        (("authorization", f"Basic {ALICE}"),),  # the right key, the wrong scheme
    )
    messages: set[str] = set()
    async with grpc.aio.insecure_channel(plain.target) as channel:
        assert len(SERVICE.methods) >= 9
        for method in SERVICE.methods:
            for metadata in refusals:
                code, message = await _call(channel, method, metadata)
                assert code is grpc.StatusCode.UNAUTHENTICATED, (method.name, metadata)
                messages.add(message)
            # With a key, the same empty request gets past the door (and fails, if it
            # does, for what it is).
            for metadata in ((("authorization", f"Bearer {ALICE}"),), (("x-api-key", BOB),)):
                code, _ = await _call(channel, method, metadata)
                assert code is not grpc.StatusCode.UNAUTHENTICATED, (method.name, metadata)
        # The health service stays open.
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # One message for every refusal, naming no tenant and no key.
    assert len(messages) == 1
    assert "alice" not in messages.pop()


async def test_two_tenants_cannot_see_each_others_conversations_memory(
    start_router: StartRouter, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    plain = await start_router(**tenants())
    await _isolation(connect(plain.target, ALICE), connect(plain.target, BOB))


async def test_two_tenants_cannot_see_each_others_conversations_sqlite(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    tmp_path: Path,
) -> None:
    context = {"store": "sqlite", "sqlite_path": str(tmp_path / "c.db")}
    ledger = {"sqlite_path": str(tmp_path / "ledger.db")}
    plain = await start_router(context=context, ledger=ledger, **tenants())
    await _isolation(connect(plain.target, ALICE), connect(plain.target, BOB))


async def test_two_tenants_cannot_see_each_others_conversations_redis(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    own_redis_url: str,
) -> None:
    plain = await start_router(context={"store": "redis", "redis_url": own_redis_url}, **tenants())
    await _isolation(connect(plain.target, ALICE), connect(plain.target, BOB))


async def _isolation(alice: AsyncModelRouterClient, bob: AsyncModelRouterClient) -> None:
    secret = await alice.create_conversation([system("tenant A private: account 1234")])
    await bob.create_conversation([system("tenant B")])
    not_found = grpc.StatusCode.NOT_FOUND
    assert await _status(bob.get_conversation(secret.id)) is not_found
    assert await _status(bob.delete_conversation(secret.id)) is not_found
    assert await _status(bob.generate("What is the account?", conversation_id=secret.id)) is (
        not_found
    )
    assert await _status(bob.count_tokens("x", conversation_id=secret.id)) is not_found
    # Not found exactly as an id that never existed: the same message shape.
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await bob.get_conversation(secret.id)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await bob.get_conversation("0" * 32)
    assert (other.value.details() or "").replace(secret.id, "ID") == (
        unknown.value.details() or ""
    ).replace("0" * 32, "ID")
    bobs = (await bob.list_conversations()).conversations
    assert [c.metadata for c in bobs] and secret.id not in {c.id for c in bobs}
    assert [c.id for c in (await alice.list_conversations()).conversations] == [secret.id]
    # Bob's delete deleted nothing; alice's history is whole and hers to use.
    turn: dict[str, Any] = {"conversation_id": secret.id, "request_id": "alice-turn-1"}
    answer = await alice.generate("Hello again", **turn)
    assert (await alice.get_conversation(secret.id)).message_count == 3
    # Bob cannot read alice's answer back by replaying her turn's request id, nor stream on
    # her conversation.
    assert await _status(bob.generate("Hello again", **turn)) is not_found
    assert await _status(_drain(bob.stream("Hello again", **turn))) is not_found
    assert await _status(_drain(bob.stream("Hi", conversation_id=secret.id))) is not_found
    assert (await alice.generate("Hello again", **turn)).text == answer.text
    assert (await alice.get_conversation(secret.id)).message_count == 3


async def test_conversations_from_before_auth_belong_to_the_default_tenant_sqlite(
    emulator: Emulator,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    tmp_path: Path,
) -> None:
    context = {"store": "sqlite", "sqlite_path": str(tmp_path / "c.db")}
    ledger = {"sqlite_path": str(tmp_path / "ledger.db")}
    await _before_and_after_auth(emulator, connect, context, ledger)


async def test_conversations_from_before_auth_belong_to_the_default_tenant_redis(
    emulator: Emulator,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    own_redis_url: str,
) -> None:
    context = {"store": "redis", "redis_url": own_redis_url}
    await _before_and_after_auth(emulator, connect, context, {})


async def _before_and_after_auth(
    emulator: Emulator,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    context: dict[str, Any],
    ledger: dict[str, Any],
) -> None:
    before = await App.start(
        make_config(context=context, ledger=ledger), env={}, host="127.0.0.1", port=0,
        emulator=emulator,
    )  # fmt: skip
    try:
        old = await connect(f"127.0.0.1:{before.port}", None).create_conversation(
            [system("from before auth")]
        )
    finally:
        await before.stop(grace_s=0)
    after = await App.start(
        make_config(context=context, ledger=ledger, **tenants()), env={}, host="127.0.0.1",
        port=0, emulator=emulator,
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{after.port}"
        alice, bob = connect(target, ALICE), connect(target, BOB)
        assert (await alice.get_conversation(old.id)).messages[0].message.content == (
            "from before auth"
        )
        assert await _status(bob.get_conversation(old.id)) is grpc.StatusCode.NOT_FOUND
        assert old.id not in {c.id for c in (await bob.list_conversations()).conversations}
    finally:
        await after.stop(grace_s=0)


async def test_allowed_models_and_tasks(
    start_router: StartRouter, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    plain = await start_router(
        **tenants(allowed_models=["gpt-4o-mini"], allowed_tasks=["chat", "reasoning"])
    )
    alice = connect(plain.target, ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await alice.generate("Hi", model="sonnet")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "claude-3-7-sonnet-20250219" in (denied.value.details() or "")
    assert "model" in (denied.value.details() or "")
    # The reasoning route starts with o3-mini; alice's request goes to the one she may use.
    reply = await alice.generate("Think", task=pb.TASK_REASONING)
    assert reply.model == GPT
    assert all(a.model == GPT for a in reply.attempts)
    with pytest.raises(grpc.aio.AioRpcError) as task:
        await alice.generate("Code", task=pb.TASK_CODE)
    assert task.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "task" in (task.value.details() or "") and "code" in (task.value.details() or "")
    # Bob has no restrictions.
    assert (await connect(plain.target, BOB).generate("Hi", model="sonnet")).model != GPT


async def test_count_tokens_keeps_to_the_allowed_models(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    emulator: Emulator,
) -> None:
    """Counting for Claude asks Anthropic's count endpoint with the router's key: a tenant
    that may not use the model may not make it do that either."""
    plain = await start_router(**tenants(allowed_models=["gpt-4o-mini"]))
    alice = connect(plain.target, ALICE)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await alice.count_tokens("Hi", model="sonnet")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "claude-3-7-sonnet-20250219" in (denied.value.details() or "")
    assert not [r for r in emulator.requests if "count_tokens" in r.path]
    assert (await alice.count_tokens("Hi", model="gpt-4o-mini")).input_tokens > 0
    assert (await connect(plain.target, BOB).count_tokens("Hi", model="sonnet")).input_tokens
    assert [r for r in emulator.requests if "count_tokens" in r.path]  # bob's call asked it


async def test_a_requests_per_minute_limit_of_5_refuses_the_6th_with_retry_info(
    start_router: StartRouter, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    plain = await start_router(**tenants(requests_per_minute=5))
    alice = connect(plain.target, ALICE)
    for _ in range(5):
        await alice.generate("Hi", max_output_tokens=20)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await alice.generate("Hi", max_output_tokens=20)
    error = refused.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "requests_per_minute" in (error.details() or "")
    (quota,) = details_of(error, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "tenant:alice"
    assert quota.violations[0].description.startswith("requests_per_minute")
    (retry,) = details_of(error, error_details_pb2.RetryInfo)
    # One request refills every 12 s; the 6th came within moments of the 5th.
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 12
    # Another tenant is not limited by alice's use, and streams count too.
    assert (await connect(plain.target, BOB).generate("Hi")).text
    assert await _status(_drain(alice.stream("Hi"))) is grpc.StatusCode.RESOURCE_EXHAUSTED


async def _drain(events: AsyncIterator[pb.GenerateStreamResponse]) -> None:
    async for _ in events:
        pass


async def test_a_budget_is_not_overspent_by_50_concurrent_requests(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    emulator: Emulator,
) -> None:
    """Every answer uses its whole output allowance, so each request really costs about its
    bound, and 50 race for a budget that holds about four."""
    budget, max_output = 0.0005, 200
    emulator.set_behavior(GPT, Behavior(output_tokens=max_output, latency_s=0.05))
    plain = await start_router(**tenants(budget_usd_per_day=budget))
    alice = connect(plain.target, ALICE)
    options: dict[str, Any] = {"model": GPT, "disable_fallback": True}

    async def one(i: int) -> grpc.StatusCode:
        prompt = f"Question {i}"
        if i % 2:
            return await _status(alice.generate(prompt, max_output_tokens=max_output, **options))
        return await _status(_drain(alice.stream(prompt, max_output_tokens=max_output, **options)))

    codes = await asyncio.gather(*(one(i) for i in range(50)))
    admitted = codes.count(grpc.StatusCode.OK)
    refused = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert admitted + refused == 50 and admitted >= 1 and refused >= 1
    usage = await alice.get_usage()
    # One request's bound: its prompt (a few tokens) plus max_output at gpt-4o-mini's prices.
    bound = (30 * 0.15 + max_output * 0.60) / 1_000_000
    overspend = usage.day.cost_usd - budget
    print(
        f"\n50 concurrent requests on a ${budget} budget: {admitted} admitted, {refused} "
        f"refused, spent ${usage.day.cost_usd:.6f}, worst overspend "
        f"${max(overspend, 0.0):.6f} (one request's bound ${bound:.6f})"
    )
    assert usage.day.requests == admitted
    assert usage.day.held_usd == 0 and usage.open_streams == 0
    assert overspend <= bound


async def test_answers_that_miss_the_response_format_are_still_charged(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    emulator: Emulator,
) -> None:
    """Two models answered (and were paid for) before the reply was refused as not matching
    the schema: the tenant's spend counts both, or a tenant could spend without limit."""
    emulator.set_behavior(GPT, Behavior(text='{"city": 3}'))
    emulator.set_behavior("claude-3-7-sonnet-20250219", Behavior(text='{"town": "Paris"}'))
    plain = await start_router(**tenants(budget_usd_per_day=5.0))
    alice = connect(plain.target, ALICE)
    schema = struct_pb2.Struct()
    schema.update(
        {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    )
    fmt = pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, schema=schema, name="city")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await alice.generate("Paris?", response_format=fmt)

    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    usage = await alice.get_usage()
    assert usage.day.requests == 1
    assert usage.day.tokens > 0 and usage.day.cost_usd > 0
    assert usage.day.held_usd == 0


async def test_a_stream_broken_after_a_tool_call_piece_is_charged_its_bound(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    emulator: Emulator,
) -> None:
    """Output had begun (a piece of a tool call, not text) when the stream broke: its use
    is unknown, so the bound is charged, as for a stream broken mid-text."""
    call = ScriptedToolCall("get_weather", json.dumps({"city": "Paris, France"}))
    emulator.set_behavior(GPT, Behavior(tool_calls=(call,), drop_after_tokens=3))
    plain = await start_router(**tenants(budget_usd_per_day=5.0))
    alice = connect(plain.target, ALICE)
    schema = struct_pb2.Struct()
    schema.update({"type": "object", "properties": {"city": {"type": "string"}}})
    tool = pb.Tool(name="get_weather", description="The weather.", input_schema=schema)
    kinds: list[str | None] = []

    with pytest.raises(grpc.aio.AioRpcError) as broken:
        async for event in alice.stream("Weather?", tools=[tool], max_output_tokens=100):
            kinds.append(event.WhichOneof("event"))

    assert broken.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "tool_call_delta" in kinds and "delta" not in kinds
    usage = await alice.get_usage()
    assert usage.day.requests == 1 and usage.day.tokens >= 100 and usage.day.cost_usd > 0
    assert usage.day.held_usd == 0 and usage.open_streams == 0


async def test_limits_hold_across_two_replicas_on_one_redis(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    own_redis_url: str,
) -> None:
    context = {"store": "redis", "redis_url": own_redis_url}
    first = await start_router(context=context, **tenants(requests_per_minute=5))
    second = await start_router(context=context, **tenants(requests_per_minute=5))
    replicas = [connect(first.target, ALICE), connect(second.target, ALICE)]
    codes = [await _status(replicas[i % 2].generate("Hi")) for i in range(8)]
    assert codes == [grpc.StatusCode.OK] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
    # Both replicas report the same usage: it lives in Redis.
    usages = [await r.get_usage() for r in replicas]
    assert [u.day.requests for u in usages] == [5, 5]


async def test_usage_is_the_tenants_own(
    start_router: StartRouter, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    plain = await start_router(
        **tenants(requests_per_minute=100, budget_usd_per_day=5.0, allowed_models=["gpt-4o-mini"])
    )
    alice, bob = connect(plain.target, ALICE), connect(plain.target, BOB)
    reply = await alice.generate("Hi")
    async for _ in bob.stream("Hello"):
        pass
    usage = await alice.get_usage()
    assert usage.tenant == "alice"
    assert usage.day.requests == 1 and usage.month.requests == 1
    assert usage.day.cost_usd == pytest.approx(reply.usage.cost_usd)
    assert usage.day.tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert usage.limits.requests_per_minute == 100
    assert usage.limits.budget_usd_per_day == 5.0
    assert list(usage.limits.allowed_models) == ["gpt-4o-mini"]
    assert (await bob.get_usage()).tenant == "bob"
    assert (await bob.get_usage()).day.requests == 1


async def test_tenant_metrics_carry_config_names_only(
    emulator: Emulator, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    from .test_metrics_endpoint import _free_port, _scrape

    metrics_port = _free_port()
    app = await App.start(
        make_config(**tenants(requests_per_minute=2)), env={}, host="127.0.0.1", port=0,
        metrics_port=metrics_port, emulator=emulator,
    )  # fmt: skip
    try:
        target = f"127.0.0.1:{app.port}"
        alice, bob, stranger = connect(target, ALICE), connect(target, BOB), connect(target, WRONG)
        codes = [await _status(alice.generate("Hi")) for _ in range(3)]
        assert codes[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED
        await bob.generate("Hi")
        assert await _status(stranger.generate("Hi")) is grpc.StatusCode.UNAUTHENTICATED
        await alice.get_usage()
        loop = asyncio.get_running_loop()
        exposition = await loop.run_in_executor(None, _scrape, metrics_port)
    finally:
        await app.stop(grace_s=0)
    lines = exposition.splitlines()
    assert 'modelrouter_tenant_requests_admitted_total{tenant="alice"} 2.0' in lines
    assert 'modelrouter_tenant_requests_admitted_total{tenant="bob"} 1.0' in lines
    refused = (
        'modelrouter_tenant_requests_refused_total{limit="requests_per_minute",tenant="alice"}'
    )
    assert f"{refused} 1.0" in lines
    assert any(
        line.startswith('modelrouter_tenant_spend_usd_today{tenant="alice"}') for line in lines
    )
    labels = {
        part.split('"')[1]
        for line in lines
        if line.startswith("modelrouter_tenant_")
        for part in line.split(",")
        if 'tenant="' in part
    }
    assert labels <= {"alice", "bob"}
    # The refusal is counted by the error boundary like any other status.
    assert any(
        line.startswith("modelrouter_requests_total{")
        and 'code="UNAUTHENTICATED"' in line
        and 'rpc="Generate"' in line
        for line in lines
    )
    assert not any(key in exposition for key in KEYS)


async def test_each_rpc_is_logged_once_with_its_tenant_and_never_its_key(
    emulator: Emulator, connect: Callable[[str, str | None], AsyncModelRouterClient]
) -> None:
    with captured_log() as log:
        app = await App.start(
            make_config(**tenants()), env={}, host="127.0.0.1", port=0, emulator=emulator
        )
        try:
            target = f"127.0.0.1:{app.port}"
            await connect(target, ALICE).generate("Hi")
            assert await _status(connect(target, WRONG).list_models()) is (
                grpc.StatusCode.UNAUTHENTICATED
            )
        finally:
            await app.stop(grace_s=0)
    done = [e for e in log.events() if e.get("event") == "request_done"]
    assert [(e["rpc"], e["code"], e.get("tenant")) for e in done] == [
        ("Generate", "OK", "alice"),
        ("ListModels", "UNAUTHENTICATED", None),
    ]
    assert not any(key in log.text for key in KEYS)


async def test_concurrent_streams_and_tokens_per_minute(
    start_router: StartRouter,
    connect: Callable[[str, str | None], AsyncModelRouterClient],
    emulator: Emulator,
) -> None:
    plain = await start_router(**tenants(max_concurrent_streams=1, tokens_per_minute=2000))
    alice = connect(plain.target, ALICE)
    # One stream held open (stalled after its first token) takes alice's only slot.
    emulator.enqueue(GPT, Behavior(output_tokens=40, stall_after_tokens=1, stall_s=3600))
    holder = alice.stream("Go on.", model=GPT, disable_fallback=True, max_output_tokens=100)
    assert (await anext(holder)).WhichOneof("event") == "start"
    with pytest.raises(grpc.aio.AioRpcError) as second:
        await _drain(alice.stream("Me too", model=GPT, max_output_tokens=100))
    assert second.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_concurrent_streams" in (second.value.details() or "")
    assert (await alice.get_usage()).open_streams == 1
    # Unary calls take no stream slot.
    assert (await alice.generate("Hi", model=GPT, max_output_tokens=100)).text
    await holder.aclose()  # type: ignore[attr-defined]  # an async generator
    # The cancelled stream freed its slot (settled at its bound: its use is unknown).
    await _drain(alice.stream("Again", model=GPT, disable_fallback=True, max_output_tokens=100))
    # A request whose bound alone exceeds the minute's tokens is refused without RetryInfo.
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await alice.generate("Hi", model=GPT, max_output_tokens=5000)
    assert too_big.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "tokens_per_minute" in (too_big.value.details() or "")
    assert details_of(too_big.value, error_details_pb2.RetryInfo) == []


async def test_a_tenants_concurrent_rpc_limit_leaves_slots_for_others(
    connect: Callable[[str, str | None], AsyncModelRouterClient], emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(latency_s=3600))
    config = make_config(**tenants(max_concurrent_rpcs=2))
    app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
    try:
        target = f"127.0.0.1:{app.port}"
        alice, bob = connect(target, ALICE), connect(target, BOB)
        holders = [
            asyncio.create_task(alice.generate("Wait.", model=GPT, disable_fallback=True))
            for _ in range(2)
        ]
        await app.admission.wait_for_in_flight(2)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await alice.list_models()
        error = refused.value
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_rpcs" in (error.details() or "")
        (quota,) = details_of(error, error_details_pb2.QuotaFailure)
        assert quota.violations[0].subject == "tenant:alice"
        assert quota.violations[0].description.startswith("max_concurrent_rpcs")
        (retry,) = details_of(error, error_details_pb2.RetryInfo)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0
        # Alice's use leaves the server's other slots to everyone else.
        assert await bob.list_models()
        for holder in holders:
            holder.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        assert await app.admission.wait_idle(60)
        assert await alice.list_models()
        counted = app.metrics.registry.get_sample_value(
            "modelrouter_tenant_requests_refused_total",
            {"tenant": "alice", "limit": "max_concurrent_rpcs"},
        )
        assert counted == 1
    finally:
        await app.stop(grace_s=0)


async def test_the_cli_sends_the_key_from_its_option_or_the_environment(
    start_router: StartRouter,
) -> None:
    plain = await start_router(**tenants())
    base = [*modelrouter_command(), "models", "--target", plain.target, "--timeout", "20"]

    async def run(*extra: str, key_env: str | None = None) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if k != "MODELROUTER_API_KEY"}
        if key_env is not None:
            env["MODELROUTER_API_KEY"] = key_env
        process = await asyncio.create_subprocess_exec(
            *base, *extra, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert not any(key in out.decode() + err.decode() for key in KEYS)
        return process.returncode or 0, out.decode() + err.decode()

    assert (await run("--api-key", ALICE))[0] == 0
    assert (await run(key_env=BOB))[0] == 0
    code, output = await run()
    assert code == 1 and "UNAUTHENTICATED" in output
    code, output = await run(key_env=WRONG)
    assert code == 1 and "UNAUTHENTICATED" in output
