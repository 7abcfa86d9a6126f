"""Scripting the emulator over HTTP, and running it as `python -m`."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import httpx2
import openai
import pytest
from modelrouter_server.emulator import Behavior, Emulator

from .support import API_KEY, GPT_4O_MINI, gpt_user

HELLO = [gpt_user("Hello, world")]


async def test_admin_behavior_scripts_a_model(
    emulator: Emulator, gpt: openai.AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    response = await http.post(
        f"{emulator.base_url}/_emulator/behavior",
        json={"model": GPT_4O_MINI, "behavior": {"error_status": 503}, "enqueue": True},
    )
    assert response.status_code == 200
    assert response.json()["behavior"]["error_status"] == 503

    with pytest.raises(openai.InternalServerError):
        await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
    await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)


async def test_admin_default_behavior_applies_until_reset(
    emulator: Emulator, gpt: openai.AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    await http.post(
        f"{emulator.base_url}/_emulator/behavior",
        json={"model": "*", "behavior": {"output_tokens": 2, "text": None}},
    )
    first = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
    reset = await http.post(f"{emulator.base_url}/_emulator/reset")
    second = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)

    assert reset.status_code == 200
    assert first.usage is not None and first.usage.completion_tokens == 2
    assert second.usage is not None and second.usage.completion_tokens == 24
    assert len(emulator.requests) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"model": "*", "behavior": {"latency": 1}},
        {"model": "*", "behavior": {"output_tokens": "many"}},
        {"model": "*", "behavior": {"error_rate": 2.0}},
        {"model": "*", "behavior": {"latency_s": True}},
        {"behavior": {}},
    ],
)
async def test_admin_rejects_a_malformed_behavior(
    emulator: Emulator, http: httpx2.AsyncClient, payload: dict[str, object]
) -> None:
    response = await http.post(f"{emulator.base_url}/_emulator/behavior", json=payload)

    assert response.status_code == 400
    assert response.json()["error"]


async def test_admin_requests_lists_records_without_the_key(
    emulator: Emulator, gpt: openai.AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    await gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
    response = await http.get(f"{emulator.base_url}/_emulator/requests?finished=1")

    [record] = response.json()
    assert record["model"] == GPT_4O_MINI
    assert record["auth"] == "bearer"
    assert record["outcome"] == "ok"
    assert record["body"]["messages"] == HELLO
    assert API_KEY not in response.text
    disconnects = await http.get(f"{emulator.base_url}/_emulator/disconnects")
    assert disconnects.json() == []


async def test_admin_waits_answer_when_the_event_happens(
    emulator: Emulator, gpt: openai.AsyncOpenAI, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior("*", Behavior(latency_s=3600))
    call = asyncio.create_task(gpt.chat.completions.create(model=GPT_4O_MINI, messages=HELLO))
    arrived = await http.get(f"{emulator.base_url}/_emulator/requests?arrived=1")
    waiting = asyncio.create_task(http.get(f"{emulator.base_url}/_emulator/disconnects?count=1"))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    gone = await waiting

    [record] = arrived.json()
    assert record["outcome"] is None and record["body"]["messages"] == HELLO
    [disconnect] = gone.json()
    assert disconnect["request_id"] == record["id"]


async def test_admin_wait_that_never_comes_true_is_504(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    response = await http.get(f"{emulator.base_url}/_emulator/requests?finished=1&timeout=0.05")

    assert response.status_code == 504
    assert response.json() == {"error": "finished: 0 of 1 after 0.05 s"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("arrived=-1", "arrived must be an integer >= 0"),
        ("count=x", "count must be an integer >= 0"),
        ("count=1&timeout=61", "timeout must be a number of seconds up to 60"),
    ],
)
async def test_admin_rejects_a_malformed_wait(
    emulator: Emulator, http: httpx2.AsyncClient, query: str, message: str
) -> None:
    path = "disconnects" if query.startswith("count") else "requests"
    response = await http.get(f"{emulator.base_url}/_emulator/{path}?{query}")

    assert response.status_code == 400
    assert response.json() == {"error": message}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(("flags", "admin_status"), [((), 404), (("--admin",), 200)])
async def test_module_runs_standalone_until_interrupted(
    flags: tuple[str, ...], admin_status: int
) -> None:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modelrouter_server.emulator",
        "--port",
        str(port),
        *flags,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        # A guard only: on a loaded 2-core machine start-up alone can take many seconds.
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert f"http://127.0.0.1:{port}/v1" in line.decode()
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0
        )
        completion = await client.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
        await client.close()
        async with httpx2.AsyncClient() as http:
            admin = await http.get(f"http://127.0.0.1:{port}/_emulator/requests")
    finally:
        process.send_signal(signal.SIGINT)
        returncode = await asyncio.wait_for(process.wait(), 10)
    assert completion.choices[0].finish_reason == "stop"
    assert admin.status_code == admin_status
    assert returncode == 0


async def test_admin_endpoints_are_off_unless_asked_for() -> None:
    async with Emulator() as emulator, httpx2.AsyncClient() as http:
        client = openai.AsyncOpenAI(
            base_url=emulator.openai_base_url, api_key=API_KEY, max_retries=0
        )
        await client.chat.completions.create(model=GPT_4O_MINI, messages=HELLO)
        await client.close()
        requests = await http.get(f"{emulator.base_url}/_emulator/requests")
        behavior = await http.post(
            f"{emulator.base_url}/_emulator/behavior",
            json={"model": "*", "behavior": {"error_status": 503}},
        )
        reset = await http.post(f"{emulator.base_url}/_emulator/reset")

    assert not emulator.admin
    assert [requests.status_code, behavior.status_code, reset.status_code] == [404, 404, 404]
    assert "Hello, world" not in requests.text
    assert len(emulator.requests) == 1
