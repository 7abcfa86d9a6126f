"""In-test stand-ins for the unit layer: a scripted `Provider` (and the shared fake clock).

`ScriptedProvider` is a real implementation of the `Provider` protocol (no SDK, no
patching): each call takes the next `Reply` queued for its model. Like the emulator, it
has one canonical answer per model and, when a request ends with an assistant message
that is a prefix of that answer, it streams exactly the rest.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.config.schema import ResilienceConfig, RouterConfig
from modelrouter_server.domain import (
    Completion,
    FinishReason,
    GenerateOptions,
    Message,
    ProviderRequest,
    Role,
    StreamEnd,
    StreamEvent,
    TextChunk,
    ThinkingChunk,
    Usage,
)
from modelrouter_server.errors import ProviderError

ANSWER = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."


@dataclass(frozen=True)
class Reply:
    """One scripted call. Text chunks are the answer's words (with their spaces)."""

    error: ProviderError | None = None
    """Raised before any event (or by `complete`)."""
    delay_s: float = 0.0
    """Real seconds before the first event (or the completion)."""
    thinking: tuple[str, ...] = ()
    fail_after_chunks: int | None = None
    mid_error: ProviderError | None = None
    stall_after_chunks: int | None = None
    stall_s: float = 60.0
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=100, output_tokens=20))


@dataclass
class ScriptedProvider:
    """A `Provider` whose replies are queued per model (default: a healthy reply)."""

    provider_name: str = "alpha"
    answers: dict[str, str] = field(default_factory=dict)
    queues: dict[str, deque[Reply]] = field(default_factory=dict)
    requests: list[ProviderRequest] = field(default_factory=list)
    open_streams: int = 0
    closed_streams: int = 0
    chunks_sent: int = 0
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a stream begins a scripted delay or stall: a test awaits it instead of
    sleeping until the provider is surely waiting."""

    @property
    def name(self) -> str:
        return self.provider_name

    @property
    def emulated(self) -> bool:
        return False

    def script(self, model: str, *replies: Reply) -> None:
        self.queues.setdefault(model, deque()).extend(replies)

    def answer_for(self, model: str) -> str:
        return self.answers.get(model, ANSWER)

    def _take(self, request: ProviderRequest) -> Reply:
        self.requests.append(request)
        queue = self.queues.get(request.model)
        return queue.popleft() if queue else Reply()

    def _rest(self, request: ProviderRequest) -> str:
        answer = self.answer_for(request.model)
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role is Role.ASSISTANT and answer.startswith(last.content):
            return answer[len(last.content) :]
        return answer

    async def complete(self, request: ProviderRequest) -> Completion:
        reply = self._take(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.error is not None:
            raise reply.error
        return Completion(
            text=self._rest(request), finish_reason=FinishReason.STOP, usage=reply.usage
        )

    async def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent, None]:
        reply = self._take(request)
        self.open_streams += 1
        try:
            if reply.delay_s:
                self.paused.set()
                await asyncio.sleep(reply.delay_s)
            if reply.error is not None:
                raise reply.error
            for thought in reply.thinking:
                yield ThinkingChunk(thought)
            for index, chunk in enumerate(words(self._rest(request))):
                if index == reply.fail_after_chunks and reply.mid_error is not None:
                    raise reply.mid_error
                if index == reply.stall_after_chunks:
                    self.paused.set()
                    await asyncio.sleep(reply.stall_s)
                self.chunks_sent += 1
                yield TextChunk(chunk)
            yield StreamEnd(FinishReason.STOP, reply.usage)
        finally:
            self.open_streams -= 1
            self.closed_streams += 1

    async def count_tokens(self, model: str, messages: Sequence[Message]) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


def words(text: str) -> list[str]:
    """Split into chunks that concatenate back to `text`."""
    parts = text.split(" ")
    return [part + " " for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def make_config(**resilience: Any) -> RouterConfig:
    """Four models on one provider, small windows; resilience settings overridable."""
    base: dict[str, Any] = {
        "max_attempts_per_model": 3,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 1.0,
        "backoff_jitter": 0.0,
        "max_retry_after_s": 10.0,
        "breaker_fail_max": 3,
        "breaker_reset_timeout_s": 5.0,
        "ttft_timeout_s": 5.0,
        "inter_token_timeout_s": 5.0,
    }
    base.update(resilience)
    return RouterConfig.model_validate(
        {
            "providers": {"alpha": {"kind": "openai"}},
            "models": {
                "small": {
                    "provider": "alpha",
                    "context_window": 1000,
                    "max_output_tokens": 200,
                    "default_output_tokens": 100,
                    "aliases": ["s"],
                    "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                },
                "big": {
                    "provider": "alpha",
                    "context_window": 8000,
                    "max_output_tokens": 4000,
                    "default_output_tokens": 500,
                    "pricing": {"input_per_mtok": 10.0, "output_per_mtok": 20.0},
                },
                "thinker": {
                    "provider": "alpha",
                    "context_window": 16000,
                    "max_output_tokens": 8000,
                    "default_output_tokens": 1000,
                    "capabilities": {"thinking": True},
                },
                "reasoner": {
                    "provider": "alpha",
                    "context_window": 16000,
                    "max_output_tokens": 8000,
                    "capabilities": {"reasoning_effort": True, "temperature": False},
                },
                "stubborn": {
                    "provider": "alpha",
                    "context_window": 16000,
                    "max_output_tokens": 8000,
                    "capabilities": {"continuation": False},
                },
            },
            "routing": {
                "default": ["small", "big"],
                "tasks": {"reasoning": ["reasoner", "thinker", "small"]},
            },
            "resilience": base,
            "context": {"summarizer_model": "small"},
        }
    )


def resilience_of(config: RouterConfig) -> ResilienceConfig:
    return config.resilience


def candidate(config: RouterConfig, model_id: str, *, max_output_tokens: int = 100) -> Candidate:
    model = config.models[model_id]
    return Candidate(
        model_id=model_id,
        provider=model.provider,
        config=model,
        max_output_tokens=max_output_tokens,
    )


def plan_of(config: RouterConfig, *model_ids: str) -> RoutePlan:
    return RoutePlan(candidates=tuple(candidate(config, m) for m in model_ids))


USER = (Message(Role.USER, "Tell me about the fox."),)


def options(**kwargs: Any) -> GenerateOptions:
    return GenerateOptions(messages=USER, **kwargs)


async def build_request(c: Candidate, timeout_s: float | None) -> ProviderRequest:
    """The simplest `RequestBuilder`: the fixed conversation, as is."""
    return c.request(USER, timeout_s=timeout_s, request_id="req-test")
