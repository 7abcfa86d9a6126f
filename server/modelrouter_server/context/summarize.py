"""Summarizing old conversation history with the configured cheap model.

`ProviderSummarizer` sends the messages to `context.summarizer_model` through its provider's
`complete()` (the real SDK path, so the emulator and real APIs are treated alike) and returns
the text with the call's usage, so the caller can bill it. Any `Summarizer` can stand in for
it (a benchmark may want a deterministic one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.domain import Message, ProviderRequest, Role, Usage
from modelrouter_server.providers.base import Provider
from modelrouter_server.usage_counting import LocalCounter, usage_or_count

SUMMARY_HEADING = "Summary of the earlier conversation"
"""How a summary message begins, so the model reading it knows what it is."""

_INSTRUCTIONS = (
    "You compress the earlier part of a conversation so that your summary can replace those "
    "messages in a language model's context. Keep every fact, name, number, decision, "
    "instruction, preference and open question that a later reply could need; drop "
    "pleasantries and repetition. Write plain prose or terse bullet points in the third "
    "person ('the user asked ...', 'the assistant explained ...'). Output only the summary."
)


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary's text, the model that wrote it and what the call used."""

    text: str
    model: str
    usage: Usage


class Summarizer(Protocol):
    """Turns a run of messages into one summary text."""

    @property
    def model_id(self) -> str:
        """The model whose tokenizer and window bound the input (see `ContextManager`)."""
        ...

    async def summarize(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> Summary:
        """Raises `ProviderError` when the model cannot be reached."""
        ...


def transcript(messages: Sequence[Message]) -> str:
    """The messages as one labelled text for the summarizer to read."""
    return "\n\n".join(f"[{m.role.value}]: {m.content}" for m in messages)


def summary_message_text(summary: str, replaced: int) -> str:
    """The content of the message that stands in for `replaced` messages."""
    return f"[{SUMMARY_HEADING} ({replaced} messages)]\n{summary.strip()}"


class ProviderSummarizer:
    """`Summarizer` over `context.summarizer_model` and its configured provider."""

    def __init__(
        self,
        config: RouterConfig,
        providers: Mapping[str, Provider],
        *,
        counter: LocalCounter | None = None,
    ) -> None:
        name = config.context.summarizer_model
        model_id = config.resolve(name)
        if model_id is None:
            raise ValueError(f"context.summarizer_model: no model or alias {name!r}")
        model = config.models[model_id]
        provider = providers.get(model.provider)
        if provider is None:
            raise ValueError(
                f"context.summarizer_model: {model_id}'s provider {model.provider!r} is not running"
            )
        self._model_id = model_id
        self._provider = provider
        self._counter = counter
        self._provider_name = model.provider
        self._hidden_reasoning = model.capabilities.reasoning_effort
        self._max_tokens = min(config.context.summary_max_tokens, model.max_output_tokens)
        # Deterministic where the model allows it: the same history should summarize alike.
        self._temperature = 0.0 if model.capabilities.temperature else None

    @property
    def model_id(self) -> str:
        return self._model_id

    async def summarize(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> Summary:
        request = ProviderRequest(
            model=self._model_id,
            messages=(
                Message(Role.SYSTEM, _INSTRUCTIONS),
                Message(Role.USER, f"Summarize this conversation:\n\n{transcript(messages)}"),
            ),
            max_output_tokens=self._max_tokens,
            temperature=self._temperature,
            timeout_s=timeout_s,
        )
        completion = await self._provider.complete(request)
        usage = usage_or_count(
            completion.usage,
            counter=self._counter,
            provider=self._provider_name,
            request=request,
            output=completion.text,
            hidden_reasoning=self._hidden_reasoning,
        )
        return Summary(text=completion.text, model=self._model_id, usage=usage)
