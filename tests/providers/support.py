"""Names and helpers the provider tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from modelrouter_server.domain import (
    Message,
    ProviderRequest,
    ReasoningEffort,
    Role,
    StreamEnd,
    StreamEvent,
    TextChunk,
    ThinkingChunk,
    Usage,
)
from modelrouter_server.emulator import DisconnectRecord, Emulator
from modelrouter_server.providers import AnthropicProvider, OpenAIProvider

CLAUDE = "claude-3-7-sonnet-20250219"
O3_MINI = "o3-mini-2025-01-31"
GPT_4O_MINI = "gpt-4o-mini-2024-07-18"
TINY_CLAUDE = "tiny-claude"
TINY_GPT = "tiny-gpt"
"""Emulated models with a 64-token window, to hit the real context-window checks."""

API_KEY = "sk-test-secret-0123456789abcdef"

Api = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class Case:
    """One provider of the contract suite, pointed at the emulator."""

    id: str
    api: Api
    provider: AnthropicProvider | OpenAIProvider
    model: str
    tiny_model: str
    emulator: Emulator

    def request(
        self,
        text: str = "Tell me something.",
        *,
        max_output_tokens: int = 256,
        stop: tuple[str, ...] = (),
        timeout_s: float = 10.0,
    ) -> ProviderRequest:
        """A one-message request to this case's model."""
        return request(
            self.model,
            Message(Role.USER, text),
            max_output_tokens=max_output_tokens,
            stop=stop,
            timeout_s=timeout_s,
        )


def request(
    model: str,
    *messages: Message,
    max_output_tokens: int = 256,
    temperature: float | None = None,
    reasoning_effort: ReasoningEffort | None = None,
    thinking_budget_tokens: int | None = None,
    stop: tuple[str, ...] = (),
    timeout_s: float | None = 10.0,
) -> ProviderRequest:
    """A request with test defaults: a short answer, a 10 s deadline."""
    return ProviderRequest(
        model=model,
        messages=messages,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        reasoning_effort=reasoning_effort,
        thinking_budget_tokens=thinking_budget_tokens,
        stop=stop,
        timeout_s=timeout_s,
    )


@dataclass(frozen=True)
class Streamed:
    """Everything one stream yielded, taken apart."""

    events: list[StreamEvent]

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextChunk))

    @property
    def thinking(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ThinkingChunk))

    @property
    def end(self) -> StreamEnd:
        last = self.events[-1]
        assert isinstance(last, StreamEnd)
        return last


async def collect(stream: AsyncIterator[StreamEvent]) -> Streamed:
    return Streamed([event async for event in stream])


async def collect_until_error(
    stream: AsyncIterator[StreamEvent],
) -> tuple[list[StreamEvent], BaseException]:
    """The events yielded before the stream raised, and what it raised."""
    events: list[StreamEvent] = []
    try:
        async for event in stream:
            events.append(event)
    except Exception as exc:
        return events, exc
    raise AssertionError(f"the stream ended without an error after {events!r}")


async def disconnect_of(
    emulator: Emulator, request_id: str, wait_s: float = 30.0
) -> DisconnectRecord:
    """The emulator's record of the client closing request `request_id`.

    Matched by id, because a request an earlier test abandoned may be noticed late.
    `wait_s` only guards against a hung test: the scripted responses last far longer, so a
    connection left open still fails the test.
    """
    return await emulator.wait_for_disconnect_of(request_id, timeout=wait_s)


def reported(usage: Usage | None) -> Usage:
    """The usage a provider sent, failing the test when it sent none."""
    assert usage is not None, "the provider reported no usage"
    return usage
