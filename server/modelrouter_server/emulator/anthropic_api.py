"""The Anthropic Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

Validation follows the real API's rules and wording for what the router can get wrong,
tool_use / tool_result pairing included; a model scripted with `tool_calls` answers with
tool_use blocks (streamed as input_json_delta). What the emulator does not model (images,
cache control) is accepted and ignored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from modelrouter_server.emulator.behavior import Behavior
from modelrouter_server.emulator.conversation import Turn, content_text, turn
from modelrouter_server.emulator.counting import (
    claude_image_tokens,
    claude_input_tokens,
    claude_text_tokens,
)
from modelrouter_server.emulator.errors import WireError
from modelrouter_server.emulator.models import Api, EmulatedModel
from modelrouter_server.emulator.prompt_cache import PromptCache, digest, has_marker
from modelrouter_server.emulator.records import AuthScheme
from modelrouter_server.emulator.sse import Frame, StreamPlan, event
from modelrouter_server.emulator.text import (
    LimitedAnswer,
    answer_tokens,
    limit_answer,
    split_tokens,
    thinking_tokens,
)
from modelrouter_server.emulator.tools import (
    EmittedCall,
    calls_tools,
    check_anthropic_tool_history,
    emitted_calls,
    forced_calls,
)

MAX_REQUEST_BYTES = 32 * 1024 * 1024
MIN_THINKING_BUDGET = 1024
REQUESTS_PER_MINUTE = 4000
TOKENS_PER_MINUTE = 400_000

_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_ERROR_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "The requested resource could not be found.",
    "timeout_error": "Request timed out.",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "This request would exceed your account's rate limit. "
    "Please try again later.",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
}

_STOP_REASONS: Mapping[str, str] = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
}


def _message_for(error_type: str) -> str:
    return _ERROR_MESSAGES.get(error_type, error_type.replace("_", " "))


def _invalid(message: str) -> WireError:
    return WireError(400, "invalid_request_error", message)


def _rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _integer(raw: object, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _invalid(f"{field}: Input should be a valid integer")
    return raw


@dataclass(frozen=True)
class _Conversation:
    model: EmulatedModel
    system: str
    turns: tuple[Turn, ...]
    message_texts: tuple[str, ...]
    image_tokens: int = 0

    @property
    def input_tokens(self) -> int:
        return claude_input_tokens(self.system, self.message_texts) + self.image_tokens


@dataclass(frozen=True)
class MessageReply:
    """A validated Messages request and its answer."""

    model: str
    stream: bool
    input_tokens: int
    thinking: tuple[str, ...]
    answer: LimitedAnswer
    error_event_type: str = "overloaded_error"
    refused: bool = False
    stop_details: Mapping[str, object] | None = None
    stop_reason_override: str | None = None
    omit_usage: bool = False
    response_model: str | None = None
    tool_calls: tuple[EmittedCall, ...] = ()
    cache_read: int = 0
    cache_write: int = 0

    @property
    def stop_reason(self) -> str:
        if self.stop_reason_override is not None:
            return self.stop_reason_override
        if self.tool_calls:
            return "tool_use"
        return "refusal" if self.refused else _STOP_REASONS[self.answer.stop]

    @property
    def paced_tokens(self) -> int:
        fragments = sum(1 + len(call.fragments) for call in self.tool_calls)
        return len(self.thinking) + len(self.answer.tokens) + fragments

    @property
    def output_tokens(self) -> int:
        return self.paced_tokens

    def _signature(self) -> str:
        # Opaque like the real one, but stable for the same thinking text.
        digest = hashlib.sha256("".join(self.thinking).encode()).digest()
        return base64.b64encode(digest * 2).decode()

    def _usage(self, output_tokens: int) -> dict[str, object]:
        return {
            "input_tokens": self.input_tokens - self.cache_read - self.cache_write,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _message(self, message_id: str, *, final: bool) -> dict[str, object]:
        content: list[dict[str, object]] = []
        if final:
            if self.thinking:
                content.append(
                    {
                        "type": "thinking",
                        "thinking": "".join(self.thinking),
                        "signature": self._signature(),
                    }
                )
            if self.answer.text or not self.tool_calls:
                content.append({"type": "text", "text": self.answer.text})
            for call in self.tool_calls:
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": _input(call.arguments_json),
                    }
                )
        message: dict[str, object] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": self.response_model or self.model,
            "content": content,
            "stop_reason": self.stop_reason if final else None,
            "stop_sequence": self.answer.stop_sequence if final else None,
        }
        if final and self.stop_details is not None:
            message["stop_details"] = self.stop_details
        if not self.omit_usage:
            message["usage"] = self._usage(self.output_tokens if final else 1)
        return message

    def json_body(self) -> dict[str, object]:
        return self._message(_message_id(), final=True)

    def stream_plan(self, ping_every_tokens: int) -> StreamPlan:
        ping = event("ping", {"type": "ping"})
        start = {"type": "message_start", "message": self._message(_message_id(), final=False)}
        head = [event("message_start", start)]
        if ping_every_tokens > 0:
            head.append(ping)
        index = 1 if self.thinking else 0
        has_text = bool(self.answer.tokens) or not self.tool_calls
        last_index = index - 1 + int(has_text) + len(self.tool_calls)

        def body() -> Iterator[Frame]:
            yield from self._thinking_frames()
            if has_text:
                yield from self._text_frames(index, ping, ping_every_tokens)
            yield from self._tool_frames(index + int(has_text), after_text=has_text)

        error = {"type": self.error_event_type, "message": _message_for(self.error_event_type)}
        error_event = event("error", {"type": "error", "error": error})
        return StreamPlan(tuple(head), body(), self._tail(last_index), error_event)

    def _thinking_frames(self) -> Iterator[Frame]:
        if not self.thinking:
            return
        yield Frame(_block_start(0, {"type": "thinking", "thinking": "", "signature": ""}))
        for t in self.thinking:
            yield Frame(_block_delta(0, {"type": "thinking_delta", "thinking": t}), "thinking")
        signature = {"type": "signature_delta", "signature": self._signature()}
        yield Frame(_block_delta(0, signature))
        yield Frame(_block_stop(0))

    def _text_frames(self, index: int, ping: bytes, ping_every_tokens: int) -> Iterator[Frame]:
        tokens = self.answer.tokens
        yield Frame(_block_start(index, {"type": "text", "text": ""}))
        for position, token in enumerate(tokens, start=1):
            yield Frame(_block_delta(index, {"type": "text_delta", "text": token}), "text")
            pinging = ping_every_tokens > 0 and position < len(tokens)
            if pinging and position % ping_every_tokens == 0:
                yield Frame(ping)

    def _tool_frames(self, first_block: int, *, after_text: bool) -> Iterator[Frame]:
        for block, call in enumerate(self.tool_calls, start=first_block):
            if after_text or block > first_block:
                yield Frame(_block_stop(block - 1))
            use = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            # The opening counts as a token: `drop_after_tokens` can then break a
            # stream before any piece of a call, or inside one.
            yield Frame(_block_start(block, use), "text")
            # The real API's first input_json_delta is often empty.
            yield Frame(_block_delta(block, {"type": "input_json_delta", "partial_json": ""}))
            for fragment in call.fragments:
                json_delta = {"type": "input_json_delta", "partial_json": fragment}
                yield Frame(_block_delta(block, json_delta), "text")

    def _tail(self, last_index: int) -> tuple[bytes, ...]:
        delta: dict[str, object] = {
            "stop_reason": self.stop_reason,
            "stop_sequence": self.answer.stop_sequence,
        }
        if self.stop_details is not None:
            delta["stop_details"] = self.stop_details
        message_delta: dict[str, object] = {"type": "message_delta", "delta": delta}
        if not self.omit_usage:
            message_delta["usage"] = {"output_tokens": self.output_tokens}
        return (
            _block_stop(last_index),
            event("message_delta", message_delta),
            event("message_stop", {"type": "message_stop"}),
        )


def _max_tokens(raw: object, model: EmulatedModel) -> int:
    if raw is None:
        raise _invalid("max_tokens: Field required")
    max_tokens = _integer(raw, "max_tokens")
    if max_tokens < 1:
        raise _invalid("max_tokens: Input should be greater than or equal to 1")
    if max_tokens > model.max_output_tokens:
        raise _invalid(
            f"max_tokens: {max_tokens} > {model.max_output_tokens}, which is the maximum "
            f"allowed number of output tokens for {model.id}"
        )
    return max_tokens


def _answer(
    conversation: _Conversation,
    behavior: Behavior,
    tool_calls: tuple[EmittedCall, ...],
    room: int,
    stop_sequences: Sequence[str],
) -> LimitedAnswer:
    """The visible answer: scripted text before scripted calls, a refusal's words, or
    the conversation's answer cut to the room left after thinking."""
    if tool_calls:
        # Scripted text goes before scripted calls; a forced call took it as input.
        before = behavior.text if behavior.tool_calls else None
        return LimitedAnswer(tuple(split_tokens(before or "")), "end")
    if behavior.refusal is not None:
        # A refusal replaces the answer; it may be empty (a refusal with no text).
        return LimitedAnswer(tuple(split_tokens(behavior.refusal)), "end")
    return limit_answer(answer_tokens(conversation.turns, behavior), room, stop_sequences)


def _input(arguments_json: str) -> object:
    """A scripted call's input; unparseable scripted JSON stands as an empty object
    (a non-streaming answer always carries a parsed object)."""
    try:
        return json.loads(arguments_json)
    except ValueError:
        return {}


def _stop_details(behavior: Behavior) -> dict[str, object] | None:
    """A refusal's `stop_details`, as newer API versions send them, when scripted."""
    if behavior.refusal is None or (
        behavior.refusal_category is None and behavior.refusal_explanation is None
    ):
        return None
    return {
        "type": "refusal",
        "category": behavior.refusal_category,
        "explanation": behavior.refusal_explanation,
    }


def _message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def _block_start(index: int, block: Mapping[str, object]) -> bytes:
    payload = {"type": "content_block_start", "index": index, "content_block": block}
    return event("content_block_start", payload)


def _block_delta(index: int, delta: Mapping[str, object]) -> bytes:
    return event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _block_stop(index: int) -> bytes:
    return event("content_block_stop", {"type": "content_block_stop", "index": index})


class AnthropicMessages:
    """The Anthropic dialect of the emulator (see `exchange.Dialect`)."""

    api: Api = "anthropic"
    request_id_header = "request-id"

    def __init__(
        self, models: Mapping[str, EmulatedModel], cache: PromptCache | None = None
    ) -> None:
        self._models = models
        self._cache = cache if cache is not None else PromptCache()

    def auth_scheme(self, headers: Mapping[str, str]) -> AuthScheme | None:
        if headers.get("x-api-key"):
            return "x-api-key"
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "bearer"
        return None

    def check_request(self, headers: Mapping[str, str], auth: AuthScheme | None, size: int) -> None:
        if auth is None:
            raise WireError(401, "authentication_error", "x-api-key header is required")
        # Any version is accepted: the SDK sends dates the emulator cannot know in advance.
        if not headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")
        if size > MAX_REQUEST_BYTES:
            raise WireError(413, "request_too_large", _ERROR_MESSAGES["request_too_large"])

    def invalid_body(self) -> WireError:
        return _invalid("The request body is not valid JSON.")

    def count_tokens(self, body: Mapping[str, object]) -> dict[str, object]:
        return {"input_tokens": self._conversation(body).input_tokens}

    def prepare(self, body: Mapping[str, object], behavior: Behavior) -> MessageReply:
        conversation = self._conversation(body)
        model = conversation.model
        max_tokens = _max_tokens(body.get("max_tokens"), model)
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _invalid("stream: Input should be a valid boolean")
        stop_sequences = _stop_sequences(body.get("stop_sequences"))
        temperature = _temperature(body.get("temperature"))
        budget = _thinking_budget(body.get("thinking"), model, max_tokens, temperature)

        input_tokens = conversation.input_tokens
        if input_tokens + max_tokens > model.context_window:
            raise _invalid(
                f"prompt is too long: {input_tokens + max_tokens} tokens > "
                f"{model.context_window} maximum"
            )

        thinking = thinking_tokens(conversation.turns, min(behavior.thinking_tokens, budget))
        tool_calls: tuple[EmittedCall, ...] = ()
        scripted = behavior.tool_calls or forced_calls(body, behavior, "anthropic")
        if scripted and calls_tools(body, {"type": "none"}):
            tool_calls = emitted_calls(scripted, "toolu_")
        answer = _answer(
            conversation, behavior, tool_calls, max_tokens - len(thinking), stop_sequences
        )
        return MessageReply(
            model.id,
            stream,
            input_tokens,
            tuple(thinking),
            answer,
            error_event_type=behavior.error_type or "overloaded_error",
            refused=behavior.refusal is not None,
            stop_details=_stop_details(behavior),
            stop_reason_override=behavior.stop_reason,
            omit_usage=behavior.omit_usage,
            response_model=behavior.response_model,
            tool_calls=tool_calls,
            **self._cache_use(body, input_tokens),
        )

    def _cache_use(self, body: Mapping[str, object], total: int) -> dict[str, int]:
        use = self._cache.anthropic(_breakpoints(body))
        read = min(use.read, total)
        return {"cache_read": read, "cache_write": min(use.written, total - read)}

    def _conversation(self, body: Mapping[str, object]) -> _Conversation:
        name = body.get("model")
        if name is None:
            raise _invalid("model: Field required")
        if not isinstance(name, str):
            raise _invalid("model: Input should be a valid string")
        model = self._models.get(name)
        if model is None or model.api != "anthropic":
            raise WireError(404, "not_found_error", f"model: {name}")
        system = _system_text(body.get("system"))
        messages = _messages(body.get("messages"))
        check_anthropic_tool_history(body, messages)
        turns = ([Turn("system", system)] if system else []) + [
            turn(role, content) for role, content in messages
        ]
        texts = tuple(content_text(content) for _, content in messages)
        images = sum(claude_image_tokens(content) for _, content in messages)
        return _Conversation(model, system, tuple(turns), texts, images)

    def scripted_error(
        self, status: int, error_type: str | None, model: str, retry_after_s: float | None
    ) -> WireError:
        kind = error_type or _ERROR_TYPES.get(
            status, "invalid_request_error" if status < 500 else "api_error"
        )
        return WireError(status, kind, _message_for(kind))

    def error_body(self, error: WireError, request_id: str) -> dict[str, object]:
        return {
            "type": "error",
            "error": {"type": error.type, "message": error.message},
            "request_id": request_id,
        }

    def rate_limit_headers(self, retry_after_s: float | None) -> dict[str, str]:
        limited = retry_after_s is not None
        reset = _rfc3339(retry_after_s if retry_after_s is not None else 0.0)
        return {
            "anthropic-ratelimit-requests-limit": str(REQUESTS_PER_MINUTE),
            "anthropic-ratelimit-requests-remaining": "0"
            if limited
            else str(REQUESTS_PER_MINUTE - 1),
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": str(TOKENS_PER_MINUTE),
            "anthropic-ratelimit-tokens-remaining": "0" if limited else str(TOKENS_PER_MINUTE),
            "anthropic-ratelimit-tokens-reset": reset,
        }


def _breakpoints(body: Mapping[str, object]) -> list[tuple[bytes, int, bool]]:
    """(digest of the prompt up to each block, its tokens, whether the block has
    cache_control), in prompt order: tools, then system, then messages. Tokens are
    counted as `input_tokens` counts them (tools and non-text blocks cost none here), so
    the cached share never exceeds the whole."""
    items: list[object] = []
    tokens = 0
    out: list[tuple[bytes, int, bool]] = []

    def add(item: object, text: str, marked: bool) -> None:
        nonlocal tokens
        items.append(item)
        tokens += claude_text_tokens(text)
        out.append((digest(items), tokens, marked))

    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        add(tool, "", has_marker(tool))
    system = body.get("system")
    for block in system if isinstance(system, list) else []:
        add(block, content_text([block]), has_marker(block))
    if isinstance(system, str):
        add({"type": "text", "text": system}, system, False)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        tokens += 3
        for block in blocks:
            add([message.get("role"), block], content_text([block]), has_marker(block))
    return out


def _system_text(system: object) -> str:
    if system is None:
        return ""
    if isinstance(system, str | list):
        return content_text(system)
    raise _invalid("system: Input should be a valid string")


def _messages(raw: object) -> list[tuple[Literal["user", "assistant"], object]]:
    if raw is None:
        raise _invalid("messages: Field required")
    if not isinstance(raw, list):
        raise _invalid("messages: Input should be a valid list")
    if not raw:
        raise _invalid("messages: at least one message is required")
    messages: list[tuple[Literal["user", "assistant"], object]] = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _invalid(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            raise _invalid(f"messages.{i}.content: Field required")
        if not isinstance(content, str | list):
            raise _invalid(f"messages.{i}.content: Input should be a valid list")
        if i == 0 and role != "user":
            raise _invalid('messages: first message must use the "user" role')
        if i > 0 and role == messages[-1][0]:
            raise _invalid(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        final_assistant = i == len(raw) - 1 and role == "assistant"
        if not content and not final_assistant:
            raise _invalid(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        messages.append((role, content))
    role, content = messages[-1]
    if role == "assistant":
        text = content_text(content)
        if text != text.rstrip():
            raise _invalid("messages: final assistant content cannot end with trailing whitespace")
    return messages


def _stop_sequences(raw: object) -> Sequence[str]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _invalid("stop_sequences: Input should be a valid list of strings")
    if any(not s.strip() for s in raw):
        raise _invalid("stop_sequences: each stop sequence must contain non-whitespace")
    return tuple(raw)


def _temperature(raw: object) -> float | None:
    if raw is None:
        return None
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise _invalid("temperature: Input should be a valid number")
    if raw < 0:
        raise _invalid("temperature: Input should be greater than or equal to 0")
    if raw > 1:
        raise _invalid("temperature: Input should be less than or equal to 1")
    return float(raw)


def _thinking_budget(
    raw: object, model: EmulatedModel, max_tokens: int, temperature: float | None
) -> int:
    """The thinking budget the request enables, 0 when thinking is off."""
    if raw is None:
        return 0
    if not isinstance(raw, dict):
        raise _invalid("thinking: Input should be a valid dictionary")
    kind = raw.get("type")
    if kind == "disabled":
        return 0
    if kind != "enabled":
        raise _invalid(
            f"thinking: Input tag '{kind}' found using 'type' does not match any of the "
            "expected tags: 'enabled', 'disabled'"
        )
    if not model.thinking:
        raise _invalid(f"'{model.id}' does not support thinking.")
    raw_budget = raw.get("budget_tokens")
    if raw_budget is None:
        raise _invalid("thinking.enabled.budget_tokens: Field required")
    budget = _integer(raw_budget, "thinking.enabled.budget_tokens")
    if budget < MIN_THINKING_BUDGET:
        raise _invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to "
            f"{MIN_THINKING_BUDGET}"
        )
    if budget >= max_tokens:
        raise _invalid(
            "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
            f"documentation at {_THINKING_DOCS}#max-tokens-and-context-window-size"
        )
    if temperature is not None and temperature != 1:
        raise _invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_THINKING_DOCS}#feature-compatibility"
        )
    return budget
