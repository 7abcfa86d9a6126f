"""The Anthropic Messages API as the official SDK sees it: answers, streams, validation."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import Omit
from anthropic.types import ThinkingConfigEnabledParam
from modelrouter_server.emulator import Behavior, EmulatedModel, Emulator

from .support import (
    ANTHROPIC_HEADERS,
    API_KEY,
    CLAUDE,
    claude_assistant,
    claude_user,
    parse_sse,
)

HELLO = [claude_user("Hello, world")]


async def test_unary_answer_is_a_real_message(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    message = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO)

    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", CLAUDE)
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    [block] = message.content
    assert block.type == "text"
    assert len(block.text.split()) == 24
    # "Hello, world" is 12 bytes: ceil(12 / 3.5) = 4, plus 3 for the message.
    assert message.usage.input_tokens == 7
    assert message.usage.output_tokens == 24
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    [record] = await emulator.wait_for_finished()
    assert (record.model, record.api, record.stream, record.outcome) == (
        CLAUDE,
        "anthropic",
        False,
        "ok",
    )
    assert record.ended_at is not None and record.ended_at >= record.started_at


async def test_same_conversation_gets_same_answer(claude: anthropic.AsyncAnthropic) -> None:
    first = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO)
    second = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO)
    other = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=[claude_user("Hi")])

    assert first.content == second.content
    assert first.content != other.content


async def test_response_headers_carry_request_id_and_rate_limits(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    raw = await claude.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, messages=HELLO
    )

    assert raw.headers["request-id"] == emulator.requests[0].id
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "4000"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")


async def test_stream_sends_events_in_the_real_order(claude: anthropic.AsyncAnthropic) -> None:
    stream = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO, stream=True)
    async with stream:
        events = [event async for event in stream]

    types = [event.type for event in events]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 24,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.input_tokens == 7
    assert start.message.usage.output_tokens == 1
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 24


async def test_stream_text_equals_unary_text(claude: anthropic.AsyncAnthropic) -> None:
    unary = await claude.messages.create(model=CLAUDE, max_tokens=100, messages=HELLO)
    async with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=HELLO) as stream:
        final = await stream.get_final_message()

    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].type == "text" and unary.content[0].type == "text"
    assert final.content[0].text == unary.content[0].text
    assert final.usage.output_tokens == 24


async def test_raw_stream_pings_every_eight_tokens(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    body = {"model": CLAUDE, "max_tokens": 100, "messages": HELLO, "stream": True}
    response = await http.post(
        f"{emulator.base_url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS
    )

    assert response.headers["content-type"].startswith("text/event-stream")
    names = [event.event for event in parse_sse(response.text)]
    # One ping after message_start, then one after tokens 8 and 16 (not after the last).
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    deltas_between_pings = "".join("d" if n == "content_block_delta" else "|" for n in names[3:-3])
    assert deltas_between_pings == "dddddddd|dddddddd|dddddddd"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_thinking_stream_sends_a_signed_thinking_block_first(
    claude: anthropic.AsyncAnthropic,
) -> None:
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stream=True,
    )
    async with stream:
        events = [event async for event in stream]

    kinds = []
    for event in events:
        if event.type == "content_block_start":
            kinds.append(f"start:{event.content_block.type}")
        elif event.type == "content_block_delta":
            kinds.append(event.delta.type)
        else:
            kinds.append(event.type)
    assert kinds == [
        "message_start",
        "start:thinking",
        *["thinking_delta"] * 16,
        "signature_delta",
        "content_block_stop",
        "start:text",
        *["text_delta"] * 24,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2].type == "message_delta"
    assert events[-2].usage.output_tokens == 16 + 24


async def test_thinking_unary_puts_thinking_block_before_text(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(thinking_tokens=5, output_tokens=3))
    message = await claude.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )

    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert len(thinking.thinking.split()) == 5
    assert thinking.signature
    assert len(text.text.split()) == 3
    assert message.usage.output_tokens == 8


async def test_max_tokens_cuts_the_answer(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)

    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert len(message.content[0].text.split()) == 5
    assert message.usage.output_tokens == 5


async def test_stop_sequence_ends_the_answer_before_it(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    emulator.set_behavior(CLAUDE, Behavior(text="Alpha beta. Gamma delta epsilon"))
    message = await claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=HELLO, stop_sequences=["Gamma", "epsilon"]
    )

    assert message.content[0].type == "text"
    assert message.content[0].text == "Alpha beta. "
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "Gamma"


async def test_count_tokens_matches_the_usage_count(claude: anthropic.AsyncAnthropic) -> None:
    messages = [claude_user("Hello, world"), claude_assistant("Hi"), claude_user("Go on")]
    counted = await claude.messages.count_tokens(
        model=CLAUDE, system="Be brief.", messages=messages
    )
    message = await claude.messages.create(
        model=CLAUDE, system="Be brief.", max_tokens=10, messages=messages
    )

    # system 9 bytes -> 3; messages (3 + 4) + (3 + 1) + (3 + 2).
    assert counted.input_tokens == 3 + 7 + 4 + 5
    assert message.usage.input_tokens == counted.input_tokens


async def test_sdk_bearer_and_classic_x_api_key_are_both_accepted(
    claude: anthropic.AsyncAnthropic, emulator: Emulator
) -> None:
    await claude.messages.create(model=CLAUDE, max_tokens=10, messages=HELLO)
    await claude.messages.create(
        model=CLAUDE,
        max_tokens=10,
        messages=HELLO,
        extra_headers={"Authorization": Omit(), "x-api-key": API_KEY},
    )

    assert [r.auth for r in emulator.requests] == ["bearer", "x-api-key"]
    assert [r.outcome for r in await emulator.wait_for_finished(2)] == ["ok", "ok"]
    assert API_KEY not in repr(emulator.requests)


async def test_missing_key_is_401_with_the_real_body(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    body = {"model": CLAUDE, "max_tokens": 10, "messages": HELLO}
    response = await http.post(
        f"{emulator.base_url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
    )

    assert response.status_code == 401
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "authentication_error"
    assert payload["request_id"] == response.headers["request-id"]
    assert emulator.requests[0].auth is None
    assert emulator.requests[0].outcome == "error:401"


async def test_missing_anthropic_version_is_rejected(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    body = {"model": CLAUDE, "max_tokens": 10, "messages": HELLO}
    response = await http.post(
        f"{emulator.base_url}/v1/messages", json=body, headers={"x-api-key": API_KEY}
    )

    assert response.status_code == 400
    assert "anthropic-version" in response.json()["error"]["message"]


async def test_unknown_model_is_not_found(claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await claude.messages.create(model="claude-nope", max_tokens=10, messages=HELLO)

    assert caught.value.type == "not_found_error"
    assert caught.value.status_code == 404


THINKING: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    ("changes", "message_part"),
    [
        ({"max_tokens": 64_001}, "max_tokens: 64001 > 64000"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "assistant", "content": "Hi"}]}, "first message"),
        ({"messages": [claude_user("a"), claude_user("b")]}, "roles must alternate"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        (
            {"messages": [claude_user("a"), {"role": "assistant", "content": "b "}]},
            "trailing whitespace",
        ),
        ({"thinking": {"type": "enabled", "budget_tokens": 1000}}, "greater than or equal to 1024"),
        ({"thinking": THINKING, "max_tokens": 1024}, "must be greater than `thinking.budget"),
        ({"thinking": THINKING, "max_tokens": 2048, "temperature": 0.5}, "`temperature` may only"),
        ({"temperature": 1.5}, "temperature"),
    ],
)
async def test_invalid_request_is_400_naming_the_problem(
    claude: anthropic.AsyncAnthropic, changes: dict[str, Any], message_part: str
) -> None:
    request: dict[str, Any] = {"model": CLAUDE, "max_tokens": 100, "messages": HELLO}
    temperature = changes.pop("temperature", None)
    request.update(changes)
    extra_body = {"temperature": temperature} if temperature is not None else None

    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(**request, extra_body=extra_body, timeout=30)

    assert caught.value.type == "invalid_request_error"
    assert message_part in str(caught.value.api_message)


async def test_thinking_on_a_model_without_it_is_rejected() -> None:
    plain = EmulatedModel("claude-plain", "anthropic", 200_000, 8_192)
    async with Emulator([plain]) as emu:
        client = anthropic.AsyncAnthropic(base_url=emu.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="does not support thinking"):
            await client.messages.create(
                model="claude-plain", max_tokens=2048, messages=HELLO, thinking=THINKING
            )
        await client.close()


async def test_prompt_over_the_window_is_rejected_with_the_count(
    claude: anthropic.AsyncAnthropic,
) -> None:
    # ceil(475,989 / 3.5) + 3 = 136,000 input tokens: with max_tokens 64,000, exactly the window.
    fits = [claude_user("a" * 475_989)]
    too_long = [claude_user("a" * 475_990)]
    counted = await claude.messages.count_tokens(model=CLAUDE, messages=too_long)
    assert counted.input_tokens == 136_001

    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(model=CLAUDE, max_tokens=64_000, messages=too_long, timeout=30)
    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message == "prompt is too long: 200001 tokens > 200000 maximum"
    # The SDK refuses a non-streaming call this large under its default timeout.
    ok = await claude.messages.create(model=CLAUDE, max_tokens=64_000, messages=fits, timeout=30)
    assert ok.usage.input_tokens == 136_000
