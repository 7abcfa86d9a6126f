"""Names and helpers the emulator tests share."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

CLAUDE = "claude-3-7-sonnet-20250219"
O3_MINI = "o3-mini-2025-01-31"
GPT_4O_MINI = "gpt-4o-mini-2024-07-18"
API_KEY = "test-key-0123456789"
ANTHROPIC_HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
OPENAI_HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class RawEvent:
    """One server-sent event as it came over the wire."""

    event: str | None
    data: str

    def json(self) -> dict[str, object]:
        parsed = json.loads(self.data)
        assert isinstance(parsed, dict)
        return parsed


def parse_sse(body: str) -> list[RawEvent]:
    """Split an SSE body into events (enough of the format for what the emulator sends)."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append(RawEvent(name, "\n".join(data)))
    return events


def claude_user(text: str) -> MessageParam:
    return {"role": "user", "content": text}


def claude_assistant(text: str) -> MessageParam:
    return {"role": "assistant", "content": text}


def gpt_user(text: str) -> ChatCompletionMessageParam:
    return {"role": "user", "content": text}


def gpt_assistant(text: str) -> ChatCompletionMessageParam:
    return {"role": "assistant", "content": text}


def api_message(error: openai.APIError) -> str:
    """The error body's message (the exception's own message is "Error code: ... - {body}")."""
    assert isinstance(error.body, dict)
    message = error.body["message"]
    assert isinstance(message, str)
    return message
