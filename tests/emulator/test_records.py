"""What the emulator remembers: a bounded ring of records, and events a test can await."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest
from modelrouter_server.emulator import Behavior, Emulator

from .support import API_KEY, GPT_4O_MINI, gpt_user


async def _ask(client: openai.AsyncOpenAI, text: str) -> None:
    await client.chat.completions.create(model=GPT_4O_MINI, messages=[gpt_user(text)])


async def test_only_the_latest_requests_are_kept() -> None:
    async with Emulator(max_records=3, admin=True) as emulator:
        client = openai.AsyncOpenAI(
            base_url=emulator.openai_base_url, api_key=API_KEY, max_retries=0
        )
        for n in range(5):
            await _ask(client, f"question {n}")
        await client.close()
        await emulator.wait_for_finished(5)

        kept = [r.body for r in emulator.requests]
        async with httpx2.AsyncClient() as http:
            served = (await http.get(f"{emulator.base_url}/_emulator/requests")).json()

    assert kept == [
        {"model": GPT_4O_MINI, "messages": [gpt_user(f"question {n}")]} for n in (2, 3, 4)
    ]
    assert [r["body"] for r in served] == kept


async def test_only_the_latest_disconnects_are_kept() -> None:
    async with Emulator(max_records=2) as emulator:
        emulator.set_behavior("*", Behavior(stall_after_tokens=0))
        client = openai.AsyncOpenAI(
            base_url=emulator.openai_base_url, api_key=API_KEY, max_retries=0
        )
        ids: list[str] = []
        for n in range(3):
            task = asyncio.create_task(_ask(client, f"question {n}"))
            ids.append((await emulator.wait_for_request(n + 1))[-1].id)
            task.cancel()
            await emulator.wait_for_disconnect(n + 1)
        await client.close()

        kept = emulator.disconnects

    assert [d.request_id for d in kept] == ids[1:]


def test_the_ring_holds_at_least_one_record() -> None:
    with pytest.raises(ValueError, match="max_records must be at least 1"):
        Emulator(max_records=0)


async def test_wait_for_request_returns_while_the_response_is_still_pending(
    emulator: Emulator, gpt: openai.AsyncOpenAI
) -> None:
    emulator.set_behavior("*", Behavior(latency_s=3600))
    task = asyncio.create_task(_ask(gpt, "anyone there?"))

    [record] = await emulator.wait_for_request()

    assert record.body == {"model": GPT_4O_MINI, "messages": [gpt_user("anyone there?")]}
    assert record.outcome is None and record.ended_at is None
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_for_finished_returns_once_the_outcome_is_recorded(
    emulator: Emulator, gpt: openai.AsyncOpenAI
) -> None:
    emulator.enqueue("*", Behavior(error_status=503))
    with pytest.raises(openai.InternalServerError):
        await _ask(gpt, "first")
    await _ask(gpt, "second")

    first, second = await emulator.wait_for_finished(2)

    assert (first.outcome, second.outcome) == ("error:503", "ok")
    assert first.ended_at is not None and second.ended_at is not None


async def test_waits_count_events_since_the_last_reset(
    emulator: Emulator, gpt: openai.AsyncOpenAI
) -> None:
    await _ask(gpt, "before the reset")
    emulator.reset()
    await _ask(gpt, "after the reset")

    [record] = await emulator.wait_for_request(1)

    assert record.body == {"model": GPT_4O_MINI, "messages": [gpt_user("after the reset")]}
    with pytest.raises(TimeoutError, match="1 request\\(s\\) arrived, expected 2"):
        await emulator.wait_for_request(2, timeout=0.05)


async def test_a_wait_that_never_comes_true_times_out(emulator: Emulator) -> None:
    with pytest.raises(TimeoutError, match="0 client disconnect\\(s\\), expected 1"):
        await emulator.wait_for_disconnect(timeout=0.05)
    with pytest.raises(TimeoutError, match="0 response\\(s\\) ended, expected 1"):
        await emulator.wait_for_finished(timeout=0.05)
