"""Every series docs/metrics.md lists is served after traffic that exercises it, and
`modelrouter_requests_total` counts the successes of every RPC (the docs say "by outcome")."""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.request
from pathlib import Path

import grpc
from modelrouter_client import AsyncModelRouterClient, assistant, pb, user
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator
from prometheus_client.parser import text_string_to_metric_families

from .conftest import make_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
GPT = "gpt-4o-mini-2024-07-18"
O3 = "o3-mini-2025-01-31"
RPCS = {m.name for m in pb.DESCRIPTOR.services_by_name["ModelRouterService"].methods}


def documented_series() -> set[str]:
    """The metric names in the first column of the docs' table."""
    names = set(re.findall(r"^\| `(modelrouter_[a-z_]+)` \|", DOCS.read_text(), re.MULTILINE))
    assert len(names) >= 15, "the table was not found"
    return names


def _scrape(port: int) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it was served with."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample.labels)
    return out


async def _every_rpc_once(client: AsyncModelRouterClient) -> None:
    await client.list_models()
    await client.count_tokens("How long is this?", model="gpt-4o-mini")
    await client.generate("Hi", model="gpt-4o-mini")
    async for _ in client.stream("Hi", model="gpt-4o-mini"):
        pass
    conversation = await client.create_conversation([user("Remember this."), assistant("Done.")])
    await client.get_conversation(conversation.id)
    await client.list_conversations()
    await client.delete_conversation(conversation.id)
    # A tenant refusal: the default tenant may use the chat task only (see the config).
    with contextlib.suppress(grpc.aio.AioRpcError):
        await client.generate("Code this", task=pb.TASK_CODE)
    await client.get_usage()


async def _faults(client: AsyncModelRouterClient, emulator: Emulator) -> None:
    # Hidden reasoning, a refusal, an answer without usage.
    emulator.enqueue(O3, Behavior(reasoning_tokens=12))
    await client.generate("Think.", model="o3-mini")
    emulator.enqueue(GPT, Behavior(refusal="I can't help with that."))
    await client.generate("Something refused", model="gpt-4o-mini")
    emulator.enqueue(GPT, Behavior(omit_usage=True))
    await client.generate("No usage", model="gpt-4o-mini")
    # A stream that breaks mid-answer continues on the next model.
    emulator.enqueue(GPT, Behavior(output_tokens=30, drop_after_tokens=5))
    async for _ in client.stream("Go on.", task=pb.TASK_CHAT):
        pass
    # Failures: retried, then answered by the fallback; the third opens the breaker.
    emulator.set_behavior(GPT, Behavior(error_status=500))
    for _ in range(2):
        assert (await client.generate("Hi", task=pb.TASK_CHAT)).fallback
    emulator.reset()


async def _pool_timeout(client: AsyncModelRouterClient, emulator: Emulator) -> None:
    # The only pooled connection is held by a stalled stream; the next call waits it out.
    emulator.enqueue(GPT, Behavior(output_tokens=40, stall_after_tokens=1, stall_s=3600))
    holder = client.stream("Go on.", model="gpt-4o-mini", disable_fallback=True, timeout=60)
    assert (await anext(holder)).WhichOneof("event") == "start"
    try:
        await client.generate("Hello", model="gpt-4o-mini", disable_fallback=True, timeout=30)
    except Exception as error:  # the pool timeout ends this call as UNAVAILABLE
        assert "UNAVAILABLE" in str(error)
    else:
        raise AssertionError("the call found a free connection")
    await holder.aclose()  # type: ignore[attr-defined]  # an async generator


async def test_every_documented_series_is_served_after_traffic(emulator: Emulator) -> None:
    config = make_config(
        resilience={"inter_token_timeout_s": 600.0},
        tenants={"default": {"allowed_tasks": ["chat"]}},
    )
    providers = {
        name: provider.model_copy(update={"max_connections": 1, "pool_timeout_s": 0.2})
        for name, provider in config.providers.items()
    }
    config = config.model_copy(update={"providers": providers})
    app = await App.start(
        config, env={}, host="127.0.0.1", port=0, metrics_port=0, emulator=emulator
    )
    try:
        assert app.metrics_port is None  # 0: off; serve it on a port of its own instead
        port = app.metrics.start_http("127.0.0.1", 0)
        async with AsyncModelRouterClient(f"127.0.0.1:{app.port}", default_timeout=30) as c:
            await _every_rpc_once(c)
            await _pool_timeout(c, emulator)
            await _faults(c, emulator)
        served = await asyncio.to_thread(_scrape, port)
    finally:
        await app.stop(grace_s=0)

    def has(name: str) -> bool:
        return any(sample in served for sample in (name, f"{name}_count", f"{name}_total"))

    missing = sorted(name for name in documented_series() if not has(name))
    assert not missing, f"documented but not served: {missing}"
    succeeded = {s["rpc"] for s in served["modelrouter_requests_total"] if s["code"] == "OK"}
    assert succeeded == RPCS
