"""Checks on what callers send, on domain values (no protobuf here).

`api.convert` turns protos into domain values (refusing only enum values the proto
cannot hold) and calls these: `check_generate_options` for a Generate, `check_messages`,
`check_stored_history` and `check_metadata` for a new conversation, `check_id` and the page
checks for the rest. `generation` calls `check_role_order` again once a conversation's
stored history is known, and routing calls `thinking_budget_problem` once a model's output
budget is known. Every rejection is a
`RequestError` naming the request field, so the status table answers INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

from modelrouter_server.config.schema import LimitsConfig
from modelrouter_server.domain import (
    GenerateOptions,
    ImagePart,
    Message,
    Role,
    TextPart,
    ToolCall,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
)
from modelrouter_server.errors import RequestError
from modelrouter_server.images import ImageError, check_image
from modelrouter_server.quoting import quote

MIN_THINKING_BUDGET = 1024
"""Anthropic's floor for `thinking.budget_tokens`."""

MAX_STOP_SEQUENCES = 4
"""OpenAI's limit; Anthropic takes more, but one rule for every model keeps fallbacks open."""


def _role_path(field: str, index: int) -> str:
    return f"{field}[{index}].role"


def _walk_roles(messages: Sequence[Message], field: str, offset: int) -> Role | None:
    """System messages first, then user and assistant strictly alternating from a user
    turn, where an assistant message with tool calls is followed by ROLE_TOOL messages
    answering each call once; the role of the last non-system message (None if none)."""
    seen_turn = False
    previous: Role | None = None
    open_calls: dict[str, None] = {}
    """Ids of the last assistant message's tool calls still without a result."""
    for i, m in enumerate(messages):
        if m.role is Role.SYSTEM:
            if seen_turn:
                raise RequestError(
                    _role_path(field, i + offset),
                    "a system message must come before every user turn",
                )
            continue
        if not seen_turn and m.role is not Role.USER:
            raise RequestError(
                _role_path(field, i + offset), "the first non-system message must be ROLE_USER"
            )
        if m.role is Role.TOOL:
            if previous not in (Role.ASSISTANT, Role.TOOL) or not (
                open_calls or previous is Role.TOOL
            ):
                raise RequestError(
                    _role_path(field, i + offset),
                    "a ROLE_TOOL message must follow a ROLE_ASSISTANT message with tool calls",
                )
            for k, part in enumerate(m.parts):
                if isinstance(part, ToolResult):
                    if part.tool_call_id not in open_calls:
                        raise RequestError(
                            f"{field}[{i + offset}].parts[{k}].tool_result.tool_call_id",
                            f"{quote(part.tool_call_id)} answers no unanswered tool call of the "
                            "assistant message before it",
                        )
                    del open_calls[part.tool_call_id]
            previous = m.role
            continue
        if open_calls:
            raise RequestError(
                _role_path(field, i + offset),
                "tool calls " + ", ".join(repr(c) for c in open_calls) + " have no result: "
                "ROLE_TOOL messages answering every call must come first",
            )
        if m.role is previous:
            raise RequestError(
                _role_path(field, i + offset),
                f"two {m.role.value} messages in a row; user and assistant must alternate",
            )
        if m.role is Role.ASSISTANT:
            open_calls = dict.fromkeys(c.id for c in m.tool_calls)
        seen_turn = True
        previous = m.role
    return previous


def check_role_order(
    messages: Sequence[Message], *, field: str = "messages", offset: int = 0
) -> None:
    """System messages first, then user and assistant strictly alternating, starting and
    ending with a user turn (or the results of the last tool calls): what a model is sent.
    `offset` numbers messages after a stored history (negative for the history itself)."""
    if _walk_roles(messages, field, offset) not in (Role.USER, Role.TOOL):
        raise RequestError(field, "the conversation must end with a ROLE_USER or ROLE_TOOL message")


def check_stored_history(messages: Sequence[Message], *, field: str = "messages") -> None:
    """A history to store for later turns: the role order of a prompt, but ending with an
    assistant message (or holding only system messages), because every later Generate
    appends a user turn to it and the two must still alternate."""
    if _walk_roles(messages, field, 0) in (Role.USER, Role.TOOL):
        raise RequestError(
            f"{field}[{len(messages) - 1}].role",
            "a stored history must end with ROLE_ASSISTANT (or hold only system messages); "
            "send the next user turn with Generate",
        )


def thinking_budget_problem(budget: int, max_output_tokens: int) -> str | None:
    """What is wrong with a thinking budget (0: off) under an output budget (0: not known
    yet), or None. The one rule for both the request as sent and the model that serves it."""
    if budget == 0:
        return None
    if budget < MIN_THINKING_BUDGET:
        return f"must be 0 (off) or at least {MIN_THINKING_BUDGET}"
    if max_output_tokens and budget >= max_output_tokens:
        return f"must be below max_output_tokens ({max_output_tokens})"
    return None


def check_thinking_budget(budget: int, max_output_tokens: int) -> None:
    """`thinking_budget_problem` as a `RequestError` on `thinking_budget_tokens`."""
    problem = thinking_budget_problem(budget, max_output_tokens)
    if problem is not None:
        raise RequestError("thinking_budget_tokens", problem)


# -- sizes ------------------------------------------------------------------------------------
# Requests larger than `limits.max_request_bytes` never get here: the error boundary
# refuses them (RESOURCE_EXHAUSTED) before decoding.


def check_message_count(count: int, limits: LimitsConfig, *, field: str = "messages") -> None:
    """Checked before converting, so a request of 100k messages costs one comparison."""
    if count > limits.max_messages:
        raise RequestError(field, f"{count} messages; at most {limits.max_messages} per request")


def check_messages(
    messages: Sequence[Message], limits: LimitsConfig, *, field: str = "messages"
) -> None:
    """Each message has content, and the count and each size are within `limits`."""
    check_message_count(len(messages), limits, field=field)
    cap = limits.max_message_bytes
    for i, m in enumerate(messages):
        if m.parts:
            _check_parts(m, f"{field}[{i}]")
        elif not m.content.strip():
            raise RequestError(f"{field}[{i}].content", "must not be empty")
        # Characters bound bytes from both sides (1 to 4 bytes each): encode only when
        # the count alone cannot decide.
        if len(m.content) * 4 <= cap:
            continue
        # An ASCII str (a flag CPython keeps) is one byte per character: no encoding.
        size = (
            len(m.content)
            if m.content.isascii()
            else len(m.content.encode("utf-8", "surrogatepass"))
        )
        if size > cap:
            raise RequestError(f"{field}[{i}].content", f"{size} bytes; at most {cap}")


_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _check_parts(message: Message, path: str) -> None:
    """Each part suits its message's role and carries what it needs."""
    if message.role is Role.TOOL and message.content:
        raise RequestError(f"{path}.content", "a ROLE_TOOL message holds only tool_result parts")
    seen_ids: set[str] = set()
    for k, part in enumerate(message.parts):
        where = f"{path}.parts[{k}]"
        if message.role is Role.TOOL and not isinstance(part, ToolResult):
            raise RequestError(where, "a ROLE_TOOL message holds only tool_result parts")
        if isinstance(part, TextPart):
            if not part.text.strip():
                raise RequestError(f"{where}.text", "must not be empty")
        elif isinstance(part, ImagePart):
            _check_image(part, f"{where}.image", message.role)
        elif isinstance(part, ToolCall):
            if message.role is not Role.ASSISTANT:
                raise RequestError(where, "tool calls belong in ROLE_ASSISTANT messages")
            if not part.id:
                raise RequestError(f"{where}.tool_call.id", "must not be empty")
            if part.id in seen_ids:
                raise RequestError(f"{where}.tool_call.id", f"{quote(part.id)} is used twice")
            seen_ids.add(part.id)
            if not _TOOL_NAME.fullmatch(part.name):
                raise RequestError(f"{where}.tool_call.name", _TOOL_NAME_RULE)
        elif isinstance(part, ToolResult):
            if message.role is not Role.TOOL:
                raise RequestError(where, "tool results belong in ROLE_TOOL messages")
            if not part.tool_call_id:
                raise RequestError(f"{where}.tool_result.tool_call_id", "must not be empty")


def _check_image(image: ImagePart, path: str, role: Role) -> None:
    if role is not Role.USER:
        raise RequestError(path, "images belong in ROLE_USER messages")
    if bool(image.data) == bool(image.url):
        raise RequestError(path, "set exactly one of data and url")
    if image.url and not image.url.startswith("https://"):
        raise RequestError(f"{path}.url", "must be an https URL")
    if image.data and image.media_type not in _IMAGE_TYPES:
        raise RequestError(
            f"{path}.media_type", "must be one of " + ", ".join(sorted(_IMAGE_TYPES))
        )
    if image.detail not in ("auto", "low", "high"):
        raise RequestError(f"{path}.detail", 'must be "low", "high" or "auto"')
    try:
        check_image(image)
    except ImageError as exc:
        raise RequestError(f"{path}.data", str(exc)) from exc


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOOL_NAME_RULE = "1 to 64 letters, digits, '_' or '-'"
MAX_TOOLS = 128
"""OpenAI's limit; one rule for every model keeps fallbacks open."""


def check_tools(settings: ToolSettings) -> None:
    """Tool names valid and unique, schemas objects, and a choice the tools allow."""
    if len(settings.tools) > MAX_TOOLS:
        raise RequestError("tools", f"{len(settings.tools)} tools; at most {MAX_TOOLS}")
    names: set[str] = set()
    for i, tool in enumerate(settings.tools):
        if not _TOOL_NAME.fullmatch(tool.name):
            raise RequestError(f"tools[{i}].name", _TOOL_NAME_RULE)
        if tool.name in names:
            raise RequestError(f"tools[{i}].name", f"{tool.name!r} is defined twice")
        names.add(tool.name)
        kind = tool.input_schema.get("type", "object")
        if kind != "object":
            raise RequestError(
                f"tools[{i}].input_schema.type", 'must be "object" (the arguments are an object)'
            )
    choice = settings.choice
    if choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL) and not settings.tools:
        raise RequestError("tool_choice.mode", "requires tools")
    if choice.mode is ToolChoiceMode.TOOL and choice.name not in names:
        raise RequestError("tool_choice.name", f"{quote(choice.name)} is not one of the tools")
    if choice.mode is not ToolChoiceMode.TOOL and choice.name:
        raise RequestError("tool_choice.name", "only with TOOL_CHOICE_MODE_TOOL")


def check_metadata(
    metadata: Mapping[str, str], limits: LimitsConfig, *, field: str = "metadata"
) -> None:
    if len(metadata) > limits.max_metadata_entries:
        raise RequestError(field, f"{len(metadata)} entries; at most {limits.max_metadata_entries}")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > limits.max_metadata_bytes:
        raise RequestError(
            field, f"{size} bytes of keys and values; at most {limits.max_metadata_bytes}"
        )


def check_id(value: str, limits: LimitsConfig, *, field: str, required: bool = False) -> None:
    """A conversation id or request id: at most `limits.max_id_length` characters."""
    if required and not value:
        raise RequestError(field, "must not be empty")
    if len(value) > limits.max_id_length:
        raise RequestError(field, f"{len(value)} characters; at most {limits.max_id_length}")


_LISTED_FRAMING_BYTES = 512
"""A listed conversation besides its metadata: id, timestamps, count, field framing."""


def page_size(requested: int, limits: LimitsConfig, *, field: str = "page_size") -> int:
    """A ListConversations page size: 0 means the default. A page is also cut to as many
    conversations as fit one reply when each carries the most metadata allowed, so a
    default client can always read it (the caller follows `next_page_token` as usual)."""
    if not 0 <= requested <= limits.max_page_size:
        raise RequestError(field, f"must be between 0 and {limits.max_page_size}")
    fit = (limits.max_response_bytes - 4096) // (limits.max_metadata_bytes + _LISTED_FRAMING_BYTES)
    return max(1, min(requested or limits.default_page_size, fit))


def message_page_size(
    requested: int, limits: LimitsConfig, *, field: str = "message_page_size"
) -> int:
    """A GetConversation page size in messages: 0 means the maximum."""
    if not 0 <= requested <= limits.max_message_page_size:
        raise RequestError(field, f"must be between 0 and {limits.max_message_page_size}")
    return requested or limits.max_message_page_size


# -- a whole request ----------------------------------------------------------------------


def check_generate_options(options: GenerateOptions, limits: LimitsConfig) -> None:
    """Everything about a Generate request that does not depend on the model or the stored
    history (both are checked once known: routing, then `check_role_order` again)."""
    check_id(options.conversation_id, limits, field="conversation_id")
    check_id(options.request_id, limits, field="request_id")
    check_messages(options.messages, limits)
    if not options.conversation_id:
        if not options.messages:
            raise RequestError("messages", "must not be empty")
        check_role_order(options.messages)
    if options.max_output_tokens < 0:
        raise RequestError("max_output_tokens", "must be at least 1 (or 0 for the default)")
    if options.temperature is not None and not 0.0 <= options.temperature <= 2.0:
        raise RequestError("temperature", "must be between 0 and 2")
    check_thinking_budget(options.thinking_budget_tokens, options.max_output_tokens)
    if len(options.stop) > MAX_STOP_SEQUENCES:
        raise RequestError("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences")
    for i, stop in enumerate(options.stop):
        if not stop:
            raise RequestError(f"stop[{i}]", "must not be empty")
    check_metadata(options.metadata, limits)
    if options.max_cost_usd < 0:
        raise RequestError("max_cost_usd", "must not be negative")


# -- message page tokens ---------------------------------------------------------------------

_MAX_SEQ = 2**63 - 1
"""Seqs are int64 on the wire and in SQLite."""


def encode_message_page_token(next_seq: int) -> str:
    """An opaque cursor: the seq the next page of messages starts at."""
    return base64.urlsafe_b64encode(f"m{next_seq}".encode()).decode()


def decode_message_page_token(token: str, *, field: str = "message_page_token") -> int:
    """The seq a `encode_message_page_token` token names; a token that does not parse or
    does not fit is the caller's error."""
    if len(token) > 64:
        raise RequestError(field, "not a token from a previous reply")
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise RequestError(field, "not a token from a previous reply") from exc
    digits = text[1:]
    if not text.startswith("m") or not digits.isascii() or not digits.isdigit():
        raise RequestError(field, "not a token from a previous reply")
    seq = int(digits)
    if seq > _MAX_SEQ:
        raise RequestError(field, "not a token from a previous reply")
    return seq
