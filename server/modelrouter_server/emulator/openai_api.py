"""The OpenAI Chat Completions API: `POST /v1/chat/completions`.

Validation follows the real API's rules and wording for what the router can get wrong,
including the o-series rules and the pairing of `tool_calls` with `tool` messages; a model
scripted with `tool_calls` answers with them (arguments streamed as JSON fragments). What
the emulator does not model (images, response formats) is accepted and ignored.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from modelrouter_server.emulator.behavior import Behavior
from modelrouter_server.emulator.conversation import turn
from modelrouter_server.emulator.counting import openai_prompt_tokens
from modelrouter_server.emulator.errors import WireError
from modelrouter_server.emulator.models import Api, EmulatedModel
from modelrouter_server.emulator.prompt_cache import PromptCache, digest
from modelrouter_server.emulator.records import AuthScheme
from modelrouter_server.emulator.sse import DONE, Frame, StreamPlan, data
from modelrouter_server.emulator.text import (
    LimitedAnswer,
    answer_tokens,
    limit_answer,
    split_tokens,
)
from modelrouter_server.emulator.tools import (
    EmittedCall,
    calls_tools,
    check_openai_tool_history,
    emitted_calls,
    forced_calls,
    format_answer,
)

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
REASONING_EFFORTS = ("low", "medium", "high")
MAX_STOP_SEQUENCES = 4
REQUESTS_PER_MINUTE = 10_000
TOKENS_PER_MINUTE = 10_000_000
SYSTEM_FINGERPRINT = "fp_emulator"

_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"

# (type, code, message) per status, for scripted errors.
_SCRIPTED_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    413: ("invalid_request_error", None, "Request too large."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-emulator on requests per min "
        "(RPM): Limit {limit}, Used {limit}, Requested 1. Please try again later.",
    ),
    500: ("server_error", None, _SERVER_ERROR),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

# (type, message) when a scripted `error_type` names one of these codes.
_ERRORS_BY_CODE: Mapping[str, tuple[str, str]] = {
    "insufficient_quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    "context_length_exceeded": (
        "invalid_request_error",
        "This model's maximum context length was exceeded. Please reduce the length of the "
        "messages or completion.",
    ),
}


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> WireError:
    return WireError(400, "invalid_request_error", message, param=param, code=code)


def _unsupported(param: str, hint: str = "") -> WireError:
    message = f"Unsupported parameter: '{param}' is not supported with this model.{hint}"
    return _invalid(message, param=param, code="unsupported_parameter")


def _duration(seconds: float) -> str:
    """A Go-style duration like the rate-limit reset headers carry: "12ms", "6m0s"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _optional_int(body: Mapping[str, object], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(
            f"Invalid type for '{name}': expected an integer, but got {_json_type(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if value < 1:
        raise _invalid(
            f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got "
            f"{value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


@dataclass(frozen=True)
class ChatReply:
    """A validated chat completion request and its answer."""

    model: str
    stream: bool
    include_usage: bool
    prompt_tokens: int
    reasoning_tokens: int
    answer: LimitedAnswer
    error_event_code: str | None = None
    refusal: tuple[str, ...] | None = None
    """The refusal's tokens, when the model refuses (then `answer` is not sent)."""
    stop_reason: str | None = None
    omit_usage: bool = False
    response_model: str | None = None
    tool_calls: tuple[EmittedCall, ...] = ()
    cached_tokens: int = 0

    @property
    def paced_tokens(self) -> int:
        return len(self._sent_tokens) + sum(1 + len(c.fragments) for c in self.tool_calls)

    @property
    def _sent_tokens(self) -> tuple[str, ...]:
        return self.refusal if self.refusal is not None else self.answer.tokens

    @property
    def finish_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        if self.tool_calls:
            return "tool_calls"
        return "length" if self.answer.stop == "max_tokens" else "stop"

    def _usage(self) -> dict[str, object]:
        completion = self.reasoning_tokens + self.paced_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _envelope(self, completion_id: str, created: int, obj: str) -> dict[str, object]:
        return {
            "id": completion_id,
            "object": obj,
            "created": created,
            "model": self.response_model or self.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    def json_body(self) -> dict[str, object]:
        refused = self.refusal is not None
        message: dict[str, object] = {
            "role": "assistant",
            "content": None
            if refused or (self.tool_calls and not self.answer.text)
            else self.answer.text,
            "refusal": "".join(self.refusal) if self.refusal is not None else None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in self.tool_calls
            ]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }
        body = {
            **self._envelope(_completion_id(), int(time.time()), "chat.completion"),
            "choices": [choice],
        }
        if not self.omit_usage:
            body["usage"] = self._usage()
        return body

    def stream_plan(self, ping_every_tokens: int) -> StreamPlan:
        envelope = self._envelope(_completion_id(), int(time.time()), "chat.completion.chunk")
        # With include_usage every chunk says "usage": null until the last one; a server
        # that ignores the option (omit_usage) sends neither.
        include_usage = self.include_usage and not self.omit_usage
        extra: dict[str, object] = {"usage": None} if include_usage else {}

        def chunk(delta: dict[str, object], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return data({**envelope, "choices": [choice], **extra})

        def body() -> Iterator[Frame]:
            if self.refusal is not None:
                # A refusal streams apart from the content, which stays null.
                yield Frame(chunk({"role": "assistant", "content": None, "refusal": ""}))
                for token in self.refusal:
                    yield Frame(chunk({"refusal": token}), "text")
            else:
                yield Frame(chunk({"role": "assistant", "content": "", "refusal": None}))
                for token in self.answer.tokens:
                    yield Frame(chunk({"content": token}), "text")
            for index, call in enumerate(self.tool_calls):
                opening = {
                    "index": index,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                # The opening counts as a token: `drop_after_tokens` can then break a
                # stream before any piece of a call, or inside one.
                yield Frame(chunk({"tool_calls": [opening]}), "text")
                for fragment in call.fragments:
                    piece = {"index": index, "function": {"arguments": fragment}}
                    yield Frame(chunk({"tool_calls": [piece]}), "text")

        tail = [chunk({}, self.finish_reason)]
        if include_usage:
            tail.append(data({**envelope, "choices": [], "usage": self._usage()}))
        tail.append(DONE)
        error = {
            "message": _SERVER_ERROR,
            "type": "server_error",
            "param": None,
            "code": self.error_event_code,
        }
        return StreamPlan((), body(), tuple(tail), data({"error": error}))


def _completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(15)[:29]


class OpenAIChat:
    """The OpenAI dialect of the emulator (see `exchange.Dialect`)."""

    api: Api = "openai"
    request_id_header = "x-request-id"

    def __init__(
        self, models: Mapping[str, EmulatedModel], cache: PromptCache | None = None
    ) -> None:
        self._models = models
        self._cache = cache if cache is not None else PromptCache()

    def auth_scheme(self, headers: Mapping[str, str]) -> AuthScheme | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return "bearer"
        return None

    def check_request(self, headers: Mapping[str, str], auth: AuthScheme | None, size: int) -> None:
        if auth is None:
            raise WireError(
                401,
                "invalid_request_error",
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )

    def invalid_body(self) -> WireError:
        return _invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        )

    def prepare(self, body: Mapping[str, object], behavior: Behavior) -> ChatReply:
        model = self._model(body)
        messages = _messages(body.get("messages"))
        _check_reasoning_parameters(body, model)
        n = body.get("n")
        if n is not None and n != 1:
            raise _invalid("The emulator supports n=1 only.", param="n")
        stream = body.get("stream") is True
        include_usage = _include_usage(body.get("stream_options"), stream)
        stop = _stop(body.get("stop"))
        requested = _requested_output(body, model)
        prompt_tokens = openai_prompt_tokens(
            messages, model.image_base_tokens, model.image_tile_tokens
        )
        _check_window(model, prompt_tokens, requested)
        budget = min(model.max_output_tokens, model.context_window - prompt_tokens)
        if requested is not None:
            budget = requested
        # Reasoning tokens are spent first and count against the same budget.
        reasoning = min(behavior.reasoning_tokens, budget) if model.reasoning else 0
        check_openai_tool_history(messages)
        turns = [turn(str(m.get("role")), m.get("content")) for m in messages]
        tool_calls: tuple[EmittedCall, ...] = ()
        scripted = behavior.tool_calls or forced_calls(body, behavior, "openai")
        if scripted and calls_tools(body, "none"):
            tool_calls = emitted_calls(scripted, "call_")
        formatted = format_answer(body, behavior)
        if tool_calls:
            before = behavior.text if behavior.tool_calls else None
            answer = LimitedAnswer(tuple(split_tokens(before or "")), "end")
        elif formatted is not None:
            answer = limit_answer(split_tokens(formatted), budget - reasoning, stop)
        else:
            answer = limit_answer(answer_tokens(turns, behavior), budget - reasoning, stop)
        return ChatReply(
            model=model.id,
            stream=stream,
            include_usage=include_usage,
            prompt_tokens=prompt_tokens,
            reasoning_tokens=reasoning,
            answer=answer,
            error_event_code=behavior.error_type,
            refusal=None if behavior.refusal is None else tuple(split_tokens(behavior.refusal)),
            stop_reason=behavior.stop_reason,
            omit_usage=behavior.omit_usage,
            response_model=behavior.response_model,
            tool_calls=tool_calls,
            cached_tokens=min(self._cached(messages, model), prompt_tokens),
        )

    def _cached(self, messages: Sequence[Mapping[str, object]], model: EmulatedModel) -> int:
        """OpenAI's automatic caching: the longest prefix of whole messages sent before."""
        prefixes = [
            (
                digest([model.id, *messages[:k]]),
                openai_prompt_tokens(
                    messages[:k], model.image_base_tokens, model.image_tile_tokens
                ),
            )
            for k in range(1, len(messages) + 1)
        ]
        return self._cache.openai(prefixes)

    def _model(self, body: Mapping[str, object]) -> EmulatedModel:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise _invalid("you must provide a model parameter")
        model = self._models.get(name)
        if model is None or model.api != "openai":
            raise self.scripted_error(404, None, name, None)
        return model

    def scripted_error(
        self, status: int, error_type: str | None, model: str, retry_after_s: float | None
    ) -> WireError:
        default_type = "invalid_request_error" if status < 500 else "server_error"
        kind, code, template = _SCRIPTED_ERRORS.get(status, (default_type, None, _SERVER_ERROR))
        if error_type is not None:
            code = error_type
            kind, template = _ERRORS_BY_CODE.get(error_type, (kind, template))
        message = template.format(model=model, limit=REQUESTS_PER_MINUTE)
        return WireError(status, kind, message, code=code)

    def error_body(self, error: WireError, request_id: str) -> dict[str, object]:
        return {
            "error": {
                "message": error.message,
                "type": error.type,
                "param": error.param,
                "code": error.code,
            }
        }

    def rate_limit_headers(self, retry_after_s: float | None) -> dict[str, str]:
        limited = retry_after_s is not None
        reset = _duration(retry_after_s if retry_after_s is not None else 0.006)
        return {
            "x-ratelimit-limit-requests": str(REQUESTS_PER_MINUTE),
            "x-ratelimit-remaining-requests": "0" if limited else str(REQUESTS_PER_MINUTE - 1),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": str(TOKENS_PER_MINUTE),
            "x-ratelimit-remaining-tokens": "0" if limited else str(TOKENS_PER_MINUTE),
            "x-ratelimit-reset-tokens": reset,
        }


def _check_reasoning_parameters(body: Mapping[str, object], model: EmulatedModel) -> None:
    """o-series models refuse sampling parameters; others refuse `reasoning_effort`."""
    if model.reasoning:
        for name, hint in (
            ("max_tokens", " Use 'max_completion_tokens' instead."),
            ("temperature", ""),
            ("top_p", ""),
        ):
            if body.get(name) is not None:
                raise _unsupported(name, hint)
    effort = body.get("reasoning_effort")
    if effort is None:
        return
    if not model.reasoning:
        raise _unsupported("reasoning_effort")
    if effort not in REASONING_EFFORTS:
        raise _invalid(
            f"Invalid value: '{effort}'. Supported values are: 'low', 'medium', and 'high'.",
            param="reasoning_effort",
            code="invalid_value",
        )


def _requested_output(body: Mapping[str, object], model: EmulatedModel) -> int | None:
    """`max_completion_tokens` (else the legacy `max_tokens`), within the model's cap."""
    limit_param = "max_completion_tokens"
    requested = _optional_int(body, limit_param)
    if requested is None:
        limit_param = "max_tokens"
        requested = _optional_int(body, limit_param)
    if requested is not None and requested > model.max_output_tokens:
        raise _invalid(
            f"{limit_param} is too large: {requested}. This model supports at most "
            f"{model.max_output_tokens} completion tokens, whereas you provided {requested}.",
            param=limit_param,
            code="invalid_value",
        )
    return requested


def _check_window(model: EmulatedModel, prompt_tokens: int, requested: int | None) -> None:
    """OpenAI's context_length_exceeded: the prompt (plus the requested output) too long."""
    if requested is not None and prompt_tokens + requested > model.context_window:
        raise _invalid(
            f"This model's maximum context length is {model.context_window} tokens. However, "
            f"you requested {prompt_tokens + requested} tokens ({prompt_tokens} in the "
            f"messages, {requested} in the completion). Please reduce the length of the "
            "messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )
    if prompt_tokens > model.context_window:
        raise _invalid(
            f"This model's maximum context length is {model.context_window} tokens. However, "
            f"your messages resulted in {prompt_tokens} tokens. Please reduce the length of "
            "the messages.",
            param="messages",
            code="context_length_exceeded",
        )


def _messages(raw: object) -> list[Mapping[str, object]]:
    if raw is None:
        raise _invalid(
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(raw, list):
        raise _invalid(
            f"Invalid type for 'messages': expected an array, but got {_json_type(raw)} instead.",
            param="messages",
            code="invalid_type",
        )
    if not raw:
        raise _invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise _invalid(
                f"Invalid type for 'messages[{i}]': expected an object, but got "
                f"{_json_type(message)} instead.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        role = message.get("role")
        if role not in ROLES:
            supported = ", ".join(f"'{r}'" for r in ROLES[:-1]) + f", and '{ROLES[-1]}'"
            raise _invalid(
                f"Invalid value: '{role}'. Supported values are: {supported}.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        # An assistant message may carry tool calls instead of content.
        if role != "assistant" and message.get("content") is None:
            raise _invalid(
                f"Missing required parameter: 'messages[{i}].content'.",
                param=f"messages[{i}].content",
                code="missing_required_parameter",
            )
    return raw


def _include_usage(raw: object, stream: bool) -> bool:
    if raw is None:
        return False
    if not stream:
        raise _invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return isinstance(raw, dict) and raw.get("include_usage") is True


def _stop(raw: object) -> Sequence[str]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if (
        isinstance(raw, list)
        and len(raw) <= MAX_STOP_SEQUENCES
        and all(isinstance(s, str) for s in raw)
    ):
        return tuple(raw)
    raise _invalid(
        f"Invalid 'stop': expected a string or an array of at most {MAX_STOP_SEQUENCES} strings.",
        param="stop",
    )
