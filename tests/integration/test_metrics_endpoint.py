"""The Prometheus endpoint reflects real traffic: requests, tokens, fallbacks, breakers."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

from modelrouter_client import pb
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import StartRouter

GPT = "gpt-4o-mini-2024-07-18"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


def _value(exposition: str, series: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {series}")


async def test_metrics_count_requests_tokens_fallbacks_and_circuit_state(
    start_router: StartRouter, emulator: Emulator
) -> None:
    port = _free_port()
    router = await start_router(server={"metrics_port": port, "shutdown_grace_s": 0.5})
    await router.generate("Hi", model="gpt-4o-mini")
    async for _ in router.stream("Hi", model="gpt-4o-mini"):
        pass
    emulator.set_behavior(GPT, Behavior(error_status=500))
    for _ in range(2):
        reply = await router.generate("Hi", task=pb.TASK_CHAT)
        assert reply.fallback

    text = await asyncio.to_thread(_scrape, port)
    ok = 'code="OK",model="gpt-4o-mini-2024-07-18",provider="openai"'
    assert _value(text, f'modelrouter_requests_total{{{ok},rpc="Generate"}}') == 1
    assert _value(text, f'modelrouter_requests_total{{{ok},rpc="GenerateStream"}}') == 1
    assert (
        _value(
            text,
            'modelrouter_output_tokens_total{model="gpt-4o-mini-2024-07-18",provider="openai"}',
        )
        == 48
    )
    assert (
        _value(
            text,
            'modelrouter_fallbacks_total{model="claude-3-7-sonnet-20250219",provider="anthropic"}',
        )
        == 2
    )
    assert (
        _value(text, 'modelrouter_retries_total{model="gpt-4o-mini-2024-07-18",provider="openai"}')
        >= 1
    )
    assert (
        _value(
            text,
            'modelrouter_circuit_breaker_state{model="gpt-4o-mini-2024-07-18",provider="openai"}',
        )
        == 2
    )  # open after three failures
    assert _value(text, "modelrouter_inflight_streams") == 0
