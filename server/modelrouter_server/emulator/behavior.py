"""What a test can script: how a model answers, and which faults it injects."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

ANY_MODEL = "*"
"""The model name that scripts every model at once."""


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call the model makes: `arguments_json` is sent as the model would stream it
    (it need not be valid JSON, to test what a provider does with broken arguments); the
    emulator mints the call's id in the API's own format."""

    name: str
    arguments_json: str = "{}"


def tool_calls_from_json(raw: object) -> tuple[ScriptedToolCall, ...]:
    """`[{"name": ..., "arguments": {...} | "raw json text"}, ...]` as scripted calls."""
    if not isinstance(raw, list):
        raise ValueError("tool_calls must be a list of {name, arguments}")
    calls: list[ScriptedToolCall] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValueError(f"tool_calls[{i}] must be an object with a string name")
        unknown = sorted(set(item) - {"name", "arguments"})
        if unknown:
            raise ValueError(f"tool_calls[{i}]: unknown fields {', '.join(unknown)}")
        arguments = item.get("arguments", {})
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        calls.append(ScriptedToolCall(str(item["name"]), text))
    return tuple(calls)


@dataclass(frozen=True)
class Behavior:
    """How one request is answered. The defaults are a healthy, fast model.

    Timing: `latency_s` passes before the response headers; in a stream `ttft_s` passes
    after them and before the first content token, then each further token waits
    `1 / tokens_per_second` (0 = no wait). A non-streaming answer waits the time the stream
    would have taken before it is sent.

    Faults: `error_status` answers with that HTTP status and the provider's real error body
    (for `error_rate` of the requests, drawn from the emulator's seeded RNG); `error_type`
    overrides the provider's error type (Anthropic) or code (OpenAI). The `*_after_tokens`
    faults fire after that many answer-text tokens (thinking deltas do not count), or at the
    end of the text when the answer is shorter. `error_event_after_tokens` and
    `truncate_after_tokens` apply to streams only; `drop_after_tokens` and
    `stall_after_tokens` also hit a non-streaming request, before anything is sent. A stall
    that runs its full `stall_s` lets the response carry on.

    What the answer says about itself: `refusal` makes the model refuse with that text
    (OpenAI: `refusal` instead of `content`, finish "stop"; Anthropic: the text with
    `stop_reason: refusal`, and `stop_details` when `refusal_category` or
    `refusal_explanation` is set). `stop_reason` sends that stop/finish reason, any
    string, instead of the one the answer earned. `omit_usage` leaves usage out of the
    response, as many OpenAI-compatible servers do. `response_model` is the model id the
    response reports (e.g. a dated snapshot); by default the requested one.
    """

    latency_s: float = 0.0
    ttft_s: float = 0.0
    tokens_per_second: float = 0.0
    output_tokens: int = 24
    text: str | None = None
    error_status: int | None = None
    error_type: str | None = None
    error_rate: float = 1.0
    retry_after_s: float | None = None
    error_event_after_tokens: int | None = None
    drop_after_tokens: int | None = None
    truncate_after_tokens: int | None = None
    stall_after_tokens: int | None = None
    stall_s: float = 3600.0
    thinking_tokens: int = 16
    reasoning_tokens: int = 0
    refusal: str | None = None
    refusal_category: str | None = None
    refusal_explanation: str | None = None
    stop_reason: str | None = None
    omit_usage: bool = False
    response_model: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    """The model calls these tools (after `text`, when set) and stops for their results,
    when the request offers tools and does not forbid them. Each call's opening and each
    fragment of its arguments count as a token for the `*_after_tokens` faults."""

    def __post_init__(self) -> None:
        for name in ("latency_s", "ttft_s", "tokens_per_second", "stall_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in (
            "output_tokens",
            "thinking_tokens",
            "reasoning_tokens",
            "error_event_after_tokens",
            "drop_after_tokens",
            "truncate_after_tokens",
            "stall_after_tokens",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.error_status is not None and not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be an HTTP error status, got {self.error_status}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {self.error_rate!r}")
        if self.retry_after_s is not None and (
            not math.isfinite(self.retry_after_s) or self.retry_after_s < 0
        ):
            raise ValueError(f"retry_after_s must be >= 0, got {self.retry_after_s!r}")


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "float": (int, float),
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
}


def behavior_from_mapping(data: Mapping[str, object]) -> Behavior:
    """Build a `Behavior` from JSON-like data, rejecting unknown fields and wrong types.

    Used by the admin endpoint, where a typo must fail loudly rather than script nothing.
    """
    fields = {field.name: field for field in dataclasses.fields(Behavior)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown behavior fields: {', '.join(unknown)}")
    values: dict[str, object] = {}
    for name, value in data.items():
        if name == "tool_calls":
            values[name] = tool_calls_from_json(value)
            continue
        # The annotations are strings ("float", "int | None", ...) under postponed evaluation.
        annotation = str(fields[name].type)
        optional = annotation.endswith("| None")
        base = annotation.removesuffix(" | None")
        if value is None:
            if not optional:
                raise ValueError(f"{name} must not be null")
        elif (isinstance(value, bool) and base != "bool") or not isinstance(
            value, _FIELD_TYPES[base]
        ):
            raise ValueError(f"{name} must be {annotation}, got {value!r}")
        values[name] = float(value) if base == "float" and isinstance(value, int) else value
    return Behavior(**values)  # type: ignore[arg-type]  # each value was type-checked above


class BehaviorScript:
    """Per-model default behaviors plus queues of one-shot behaviors.

    A request takes, in order: the next one-shot behavior queued for its model, then one
    queued for every model (`"*"`), then its model's default, then the default for every
    model, then `Behavior()`.
    """

    def __init__(self) -> None:
        self._defaults: dict[str, Behavior] = {}
        self._queues: dict[str, deque[Behavior]] = {}

    def set_default(self, model: str, behavior: Behavior) -> None:
        self._defaults[model] = behavior

    def enqueue(self, model: str, behaviors: tuple[Behavior, ...]) -> None:
        self._queues.setdefault(model, deque()).extend(behaviors)

    def take(self, model: str) -> Behavior:
        for name in (model, ANY_MODEL):
            queue = self._queues.get(name)
            if queue:
                return queue.popleft()
        for name in (model, ANY_MODEL):
            if name in self._defaults:
                return self._defaults[name]
        return Behavior()

    def clear(self) -> None:
        self._defaults.clear()
        self._queues.clear()
