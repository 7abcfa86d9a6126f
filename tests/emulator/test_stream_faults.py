"""Mid-stream faults and timing, as the SDKs experience them, and client disconnects as the
emulator records them."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx2
import openai
import pytest
from modelrouter_server.emulator import Behavior, Emulator

from .support import (
    ANTHROPIC_HEADERS,
    CLAUDE,
    GPT_4O_MINI,
    OPENAI_HEADERS,
    claude_user,
    gpt_user,
    parse_sse,
)

CLAUDE_HELLO = [claude_user("Hello, world")]
GPT_HELLO = [gpt_user("Hello, world")]


async def _claude_stream_text(client: anthropic.AsyncAnthropic, received: list[str]) -> None:
    stream = await client.messages.create(
        model=CLAUDE, max_tokens=100, messages=CLAUDE_HELLO, stream=True
    )
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                received.append(event.delta.text)


async def _gpt_stream_text(client: openai.AsyncOpenAI, received: list[str]) -> None:
    stream = await client.chat.completions.create(
        model=GPT_4O_MINI, messages=GPT_HELLO, stream=True
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)


async def test_anthropic_error_event_raises_status_error_with_overloaded_type(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(error_event_after_tokens=5))
    received: list[str] = []

    with pytest.raises(anthropic.APIStatusError) as caught:
        await _claude_stream_text(claude, received)

    # The SDK raises the plain class: the HTTP status was 200.
    assert type(caught.value) is anthropic.APIStatusError
    assert caught.value.status_code == 200
    assert caught.value.type == "overloaded_error"
    assert len(received) == 5
    [record] = await emulator.wait_for_finished()
    assert record.outcome == "error_event"


async def test_openai_error_chunk_raises_api_error(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(error_event_after_tokens=5))
    received: list[str] = []

    with pytest.raises(openai.APIError) as caught:
        await _gpt_stream_text(gpt, received)

    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.type == "server_error"
    assert len(received) == 5
    [record] = await emulator.wait_for_finished()
    assert record.outcome == "error_event"


async def test_anthropic_drop_raises_the_transport_error(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(drop_after_tokens=3))
    received: list[str] = []

    # anthropic lets the transport's protocol error through unwrapped.
    with pytest.raises(httpx2.RemoteProtocolError):
        await _claude_stream_text(claude, received)

    assert len(received) == 3
    assert emulator.requests[0].outcome == "dropped"
    assert emulator.disconnects == []


async def test_openai_drop_raises_connection_error(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(drop_after_tokens=3))
    received: list[str] = []

    with pytest.raises(openai.APIConnectionError):
        await _gpt_stream_text(gpt, received)

    assert len(received) == 3
    assert emulator.requests[0].outcome == "dropped"


async def test_unary_drop_raises_connection_error(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(drop_after_tokens=0))

    with pytest.raises(openai.APIConnectionError):
        await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO)


async def test_anthropic_truncation_ends_cleanly_without_message_stop(
    claude: anthropic.AsyncAnthropic, emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(truncate_after_tokens=4))
    stream = await claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=CLAUDE_HELLO, stream=True
    )
    async with stream:
        types = [event.type async for event in stream]

    assert types[-1] == "content_block_delta"
    assert "message_stop" not in types and "message_delta" not in types
    body = {"model": CLAUDE, "max_tokens": 100, "messages": CLAUDE_HELLO, "stream": True}
    raw = await http.post(f"{emulator.base_url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    events = parse_sse(raw.text)
    assert sum(e.event == "content_block_delta" for e in events) == 4
    assert events[-1].event == "content_block_delta"
    assert [r.outcome for r in await emulator.wait_for_finished(2)] == ["truncated", "truncated"]


async def test_openai_truncation_ends_cleanly_without_done(
    gpt: openai.AsyncOpenAI, emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior(GPT_4O_MINI, Behavior(truncate_after_tokens=4))
    received: list[str] = []
    await _gpt_stream_text(gpt, received)

    assert len(received) == 4
    body = {"model": GPT_4O_MINI, "messages": GPT_HELLO, "stream": True}
    raw = await http.post(
        f"{emulator.openai_base_url}/chat/completions", json=body, headers=OPENAI_HEADERS
    )
    events = parse_sse(raw.text)
    assert [e.data for e in events].count("[DONE]") == 0
    last_choices = events[-1].json()["choices"]
    assert isinstance(last_choices, list)
    assert last_choices[0]["finish_reason"] is None


async def test_fault_beyond_the_answer_fires_at_its_end(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(output_tokens=6, error_event_after_tokens=100))
    received: list[str] = []

    with pytest.raises(openai.APIError):
        await _gpt_stream_text(gpt, received)

    assert len(received) == 6


async def test_cancelling_a_stalled_consumer_is_recorded(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(stall_after_tokens=2))
    received: list[str] = []
    two_tokens = asyncio.Event()

    async def consume() -> None:
        stream = await claude.messages.create(
            model=CLAUDE, max_tokens=100, messages=CLAUDE_HELLO, stream=True
        )
        async with stream:
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    received.append(event.delta.text)
                    if len(received) == 2:
                        two_tokens.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(two_tokens.wait(), timeout=30)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The stall lasts an hour: within the wait, only the client leaving ends the response.
    [disconnect] = await emulator.wait_for_disconnect()

    assert disconnect.at >= cancelled_at
    # The stall held the third token.
    assert disconnect.tokens_sent == 2
    assert len(received) == 2
    assert disconnect.model == CLAUDE
    assert disconnect.request_id == emulator.requests[0].id
    assert emulator.requests[0].outcome == "client_disconnected"


async def test_closing_a_stream_waiting_for_its_first_token_is_recorded(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(ttft_s=3600))
    # The headers come before the time to first token, so the call returns.
    stream = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO, stream=True)

    closed_at = time.monotonic()
    await stream.close()
    [disconnect] = await emulator.wait_for_disconnect()

    assert disconnect.at >= closed_at
    assert disconnect.tokens_sent == 0


async def test_cancelling_a_request_waiting_for_headers_is_recorded(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.enqueue(CLAUDE, Behavior(latency_s=3600))
    task = asyncio.create_task(
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)
    )
    [arrived] = await emulator.wait_for_request()

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [disconnect] = await emulator.wait_for_disconnect()

    assert disconnect.at >= cancelled_at
    assert disconnect.request_id == arrived.id
    assert arrived.outcome == "client_disconnected"


async def test_a_stall_that_runs_out_lets_the_stream_finish(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.enqueue(GPT_4O_MINI, Behavior(stall_after_tokens=3, stall_s=0.2, output_tokens=6))
    received: list[str] = []
    await _gpt_stream_text(gpt, received)
    [record] = await emulator.wait_for_finished()

    assert len(received) == 6
    assert record.outcome == "stalled"
    # A lower bound only: load can lengthen the stall, never shorten it.
    assert record.ended_at is not None and record.ended_at - record.started_at >= 0.2


async def test_wait_for_disconnect_times_out_when_nobody_leaves(emulator: Emulator) -> None:
    with pytest.raises(TimeoutError):
        await emulator.wait_for_disconnect(timeout=0.05)


async def test_ttft_and_tokens_per_second_pace_the_stream(
    gpt: openai.AsyncOpenAI, emulator: Emulator
) -> None:
    emulator.set_behavior(
        GPT_4O_MINI, Behavior(ttft_s=0.15, tokens_per_second=100, output_tokens=11)
    )
    started = time.monotonic()
    stream = await gpt.chat.completions.create(model=GPT_4O_MINI, messages=GPT_HELLO, stream=True)
    arrivals = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)

    assert len(arrivals) == 11
    assert arrivals[0] >= 0.15
    # Ten gaps of 10 ms between eleven tokens.
    assert arrivals[-1] - arrivals[0] >= 0.1


async def test_latency_delays_the_headers_of_a_unary_reply(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(latency_s=0.2))
    started = time.monotonic()
    await claude.messages.create(model=CLAUDE, max_tokens=10, messages=CLAUDE_HELLO)

    assert time.monotonic() - started >= 0.2


async def test_stop_cancels_a_stalled_response() -> None:
    emulator = Emulator()
    await emulator.start()
    emulator.set_behavior("*", Behavior(stall_after_tokens=0))
    client = anthropic.AsyncAnthropic(base_url=emulator.base_url, api_key="k", max_retries=0)
    stream = await client.messages.create(
        model=CLAUDE, max_tokens=100, messages=CLAUDE_HELLO, stream=True
    )

    # The stall lasts an hour: stop returning at all is the cancel (the timeout is a guard).
    async with asyncio.timeout(10):
        await emulator.stop()
    assert emulator.requests[0].outcome == "server_stopped"
    assert emulator.disconnects == []
    with pytest.raises(httpx2.RemoteProtocolError):
        async for _ in stream:
            pass
    await client.close()
