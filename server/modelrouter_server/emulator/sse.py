"""Server-sent event framing, and the shape of a stream before it is paced onto the wire."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

DONE = b"data: [DONE]\n\n"
"""OpenAI's terminal line."""


def _json(data: Mapping[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def event(name: str, data: Mapping[str, object]) -> bytes:
    """An Anthropic-style named event."""
    return f"event: {name}\ndata: {_json(data)}\n\n".encode()


def data(payload: Mapping[str, object]) -> bytes:
    """An OpenAI-style unnamed data line."""
    return f"data: {_json(payload)}\n\n".encode()


FrameKind = Literal["meta", "thinking", "text"]


@dataclass(frozen=True)
class Frame:
    """One SSE frame. Thinking and text frames carry a token and are paced; only text frames
    count towards the `*_after_tokens` faults."""

    payload: bytes
    kind: FrameKind = "meta"


@dataclass(frozen=True)
class StreamPlan:
    """A whole stream: `head` goes right after the headers, `body` after the time to first
    token, `tail` closes a healthy stream, `error_event` replaces the rest when a mid-stream
    error is scripted. `body` is rendered as it is sent (iterable once), so a long answer
    streamed to a client that reads slowly is never held whole in memory."""

    head: tuple[bytes, ...]
    body: Iterator[Frame]
    tail: tuple[bytes, ...]
    error_event: bytes
