"""What the router hands the context manager and the fallback chain: the models to try,
in order, each with the request settings worked out for it.

A domain type shared by routing, generation and resilience, so none of them imports
another for it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrouter_server.attempts import AttemptRecord
from modelrouter_server.config.schema import ModelConfig
from modelrouter_server.domain import (
    NO_TOOLS,
    TEXT_FORMAT,
    Message,
    ProviderRequest,
    ReasoningEffort,
    ResponseFormat,
    ToolSettings,
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model to try, with the request settings worked out for that model.

    `max_output_tokens` is final (requested, else the model's default, within its cap);
    `thinking_budget_tokens`, `reasoning_effort` and `temperature` are None when the model
    does not take them, so a provider can pass them on without checking capabilities.
    """

    model_id: str
    provider: str
    config: ModelConfig
    max_output_tokens: int
    thinking_budget_tokens: int | None = None
    reasoning_effort: ReasoningEffort | None = None
    temperature: float | None = None
    explicit: bool = False
    """The caller named this model (`GenerateOptions.model`)."""

    def request(
        self,
        messages: Sequence[Message],
        *,
        stop: tuple[str, ...] = (),
        timeout_s: float | None = None,
        request_id: str = "",
        tools: ToolSettings = NO_TOOLS,
        response_format: ResponseFormat = TEXT_FORMAT,
    ) -> ProviderRequest:
        """The provider request for `messages` (already fitted to this model's window)."""
        return ProviderRequest(
            model=self.model_id,
            messages=tuple(messages),
            max_output_tokens=self.max_output_tokens,
            temperature=self.temperature,
            reasoning_effort=self.reasoning_effort,
            thinking_budget_tokens=self.thinking_budget_tokens,
            stop=stop,
            timeout_s=timeout_s,
            request_id=request_id,
            tools=tools,
            response_format=response_format,
            prompt_cache=self.config.capabilities.prompt_caching,
        )


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The candidates in the order to try them, and those filtered out before any call."""

    candidates: tuple[Candidate, ...]
    skipped: tuple[AttemptRecord, ...] = ()
    refusal_fallback: bool = False
    """A refusal passes on to the next candidate (the route's `refusal_fallback`)."""
