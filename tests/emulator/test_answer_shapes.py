"""Scripted answer shapes on the wire: refusals, forced stop reasons, usage left out, and
the model a response names, as the real APIs send them."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.emulator.behavior import behavior_from_mapping

from .support import (
    ANTHROPIC_HEADERS,
    CLAUDE,
    GPT_4O_MINI,
    OPENAI_HEADERS,
    claude_user,
    gpt_user,
    parse_sse,
)

REFUSAL = "I'm sorry, I can't assist with that request."


async def _openai(emulator: Emulator, http: httpx2.AsyncClient, *, stream: bool) -> httpx2.Response:
    body: dict[str, object] = {"model": GPT_4O_MINI, "messages": [gpt_user("Hi")]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return await http.post(
        f"{emulator.openai_base_url}/chat/completions", json=body, headers=OPENAI_HEADERS
    )


async def _anthropic(
    emulator: Emulator, http: httpx2.AsyncClient, *, stream: bool
) -> httpx2.Response:
    body = {"model": CLAUDE, "max_tokens": 64, "messages": [claude_user("Hi")], "stream": stream}
    return await http.post(f"{emulator.base_url}/v1/messages", json=body, headers=ANTHROPIC_HEADERS)


async def test_openai_unary_refusal_is_in_refusal_with_null_content(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior(GPT_4O_MINI, Behavior(refusal=REFUSAL))
    [choice] = (await _openai(emulator, http, stream=False)).json()["choices"]
    assert choice["message"]["content"] is None
    assert choice["message"]["refusal"] == REFUSAL
    assert choice["finish_reason"] == "stop"


async def test_openai_streamed_refusal_arrives_in_refusal_deltas(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior(GPT_4O_MINI, Behavior(refusal=REFUSAL))
    events = parse_sse((await _openai(emulator, http, stream=True)).text)
    chunks: list[Any] = [json.loads(e.data) for e in events[:-2]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": ""}
    assert all("content" not in d for d in deltas[1:-1])
    assert "".join(d.get("refusal") or "" for d in deltas) == REFUSAL


async def test_anthropic_refusal_sends_stop_reason_and_stop_details(
    emulator: Emulator, http: httpx2.AsyncClient
) -> None:
    emulator.set_behavior(
        CLAUDE, Behavior(refusal="", refusal_category="bio", refusal_explanation="Not this.")
    )
    events = parse_sse((await _anthropic(emulator, http, stream=True)).text)
    [delta] = [json.loads(e.data)["delta"] for e in events if e.event == "message_delta"]
    assert delta["stop_reason"] == "refusal"
    assert delta["stop_details"] == {
        "type": "refusal",
        "category": "bio",
        "explanation": "Not this.",
    }
    texts = [e.json()["delta"] for e in events if e.event == "content_block_delta"]
    assert texts == []


@pytest.mark.parametrize("stream", [False, True])
async def test_omit_usage_leaves_usage_out_of_both_apis(
    emulator: Emulator, http: httpx2.AsyncClient, stream: bool
) -> None:
    emulator.set_behavior("*", Behavior(omit_usage=True))
    for response in (
        await _openai(emulator, http, stream=stream),
        await _anthropic(emulator, http, stream=stream),
    ):
        assert '"usage"' not in response.text
        assert '"output_tokens"' not in response.text


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_reason_and_response_model_are_sent_as_scripted(
    emulator: Emulator, http: httpx2.AsyncClient, stream: bool
) -> None:
    emulator.set_behavior("*", Behavior(stop_reason="pause_turn", response_model="snap-1"))
    anthropic_body = (await _anthropic(emulator, http, stream=stream)).text
    openai_body = (await _openai(emulator, http, stream=stream)).text
    assert '"stop_reason": "pause_turn"' in anthropic_body.replace('":"', '": "')
    assert '"finish_reason": "pause_turn"' in openai_body.replace('":"', '": "')
    for body in (anthropic_body, openai_body):
        assert '"model": "snap-1"' in body.replace('":"', '": "')


def test_the_admin_mapping_takes_the_new_fields_and_checks_their_types() -> None:
    behavior = behavior_from_mapping({"omit_usage": True, "refusal": "No.", "stop_reason": "x"})
    assert behavior.omit_usage and behavior.refusal == "No." and behavior.stop_reason == "x"
    with pytest.raises(ValueError, match="omit_usage"):
        behavior_from_mapping({"omit_usage": 1})
    with pytest.raises(ValueError, match="output_tokens"):
        behavior_from_mapping({"output_tokens": True})
