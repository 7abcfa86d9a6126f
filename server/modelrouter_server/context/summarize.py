"""Summarizing old conversation history with the configured cheap model.

`ModelSummarizer` asks `context.summarizer_model` for a summary and returns the text with the
call's usage, so the caller can bill it. It does not call a provider itself: it hands its
request to a `SendRequest`, which the composition root wires to the fallback chain, so a
summary goes through the same breaker and retry loop as every caller's request. Any
`Summarizer` can stand in for it (a benchmark may want a deterministic one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from modelrouter_server.candidates import Candidate
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context._digest import message_text
from modelrouter_server.domain import (
    Completion,
    CountMethod,
    Message,
    ProviderRequest,
    Role,
    Usage,
)

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
        """Raises a `RouterError` when no summary could be had (`ProviderError`,
        `NoCandidates`, `DeadlineExceeded`)."""
        ...


SendRequest = Callable[[Candidate, ProviderRequest], Awaitable[Completion]]
"""Sends one request to the candidate's model and returns the completion; raises what the
fallback chain raises. The composition root passes `FallbackChain.complete_request`."""


def transcript(messages: Sequence[Message]) -> str:
    """The messages as one labelled text for the summarizer to read."""
    return "\n\n".join(f"[{m.role.value}]: {message_text(m)}" for m in messages)


def summary_message_text(summary: str, replaced: int) -> str:
    """The content of the message that stands in for `replaced` messages."""
    return f"[{SUMMARY_HEADING} ({replaced} messages)]\n{summary.strip()}"


class ModelSummarizer:
    """`Summarizer` over `context.summarizer_model`, sending through `send`."""

    def __init__(self, config: RouterConfig, send: SendRequest) -> None:
        name = config.context.summarizer_model
        model_id = config.resolve(name)
        if model_id is None:
            raise ValueError(f"context.summarizer_model: no model or alias {name!r}")
        model = config.models[model_id]
        self._candidate = Candidate(
            model_id=model_id,
            provider=model.provider,
            config=model,
            max_output_tokens=min(config.context.summary_max_tokens, model.max_output_tokens),
            # Deterministic where the model allows it: the same history should summarize alike.
            temperature=0.0 if model.capabilities.temperature else None,
        )
        self._send = send

    @property
    def model_id(self) -> str:
        return self._candidate.model_id

    async def summarize(
        self, messages: Sequence[Message], *, timeout_s: float | None = None
    ) -> Summary:
        request = self._candidate.request(
            (
                Message(Role.SYSTEM, _INSTRUCTIONS),
                Message(Role.USER, f"Summarize this conversation:\n\n{transcript(messages)}"),
            ),
            timeout_s=timeout_s,
        )
        completion = await self._send(self._candidate, request)
        # The chain settles usage (the provider's, or the router's count of the call); a
        # sender that does not is billed nothing, labelled an estimate, as the chain does
        # without a counter.
        usage = completion.usage or Usage(method=CountMethod.ESTIMATE)
        return Summary(text=completion.text, model=self.model_id, usage=usage)
