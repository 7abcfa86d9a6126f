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
from collections.abc import Mapping, Sequence

from modelrouter_server.config.schema import LimitsConfig
from modelrouter_server.domain import GenerateOptions, Message, Role
from modelrouter_server.errors import RequestError

MIN_THINKING_BUDGET = 1024
"""Anthropic's floor for `thinking.budget_tokens`."""

MAX_STOP_SEQUENCES = 4
"""OpenAI's limit; Anthropic takes more, but one rule for every model keeps fallbacks open."""


def _walk_roles(messages: Sequence[Message], field: str, offset: int) -> Role | None:
    """System messages first, then user and assistant strictly alternating from a user
    turn; the role of the last user or assistant message (None if there is none)."""
    seen_turn = False
    previous: Role | None = None
    for i, m in enumerate(messages):
        path = f"{field}[{i + offset}].role"
        if m.role is Role.SYSTEM:
            if seen_turn:
                raise RequestError(path, "a system message must come before every user turn")
            continue
        if not seen_turn and m.role is not Role.USER:
            raise RequestError(path, "the first non-system message must be ROLE_USER")
        if m.role is previous:
            raise RequestError(
                path, f"two {m.role.value} messages in a row; user and assistant must alternate"
            )
        seen_turn = True
        previous = m.role
    return previous


def check_role_order(
    messages: Sequence[Message], *, field: str = "messages", offset: int = 0
) -> None:
    """System messages first, then user and assistant strictly alternating, starting and
    ending with a user turn: what a model is sent. `offset` numbers messages after a stored
    history (negative for the history itself)."""
    if _walk_roles(messages, field, offset) is not Role.USER:
        raise RequestError(field, "the conversation must end with a ROLE_USER message")


def check_stored_history(messages: Sequence[Message], *, field: str = "messages") -> None:
    """A history to store for later turns: the role order of a prompt, but ending with an
    assistant message (or holding only system messages), because every later Generate
    appends a user turn to it and the two must still alternate."""
    if _walk_roles(messages, field, 0) is Role.USER:
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
# Requests larger than `limits.max_request_bytes` never get here: the gRPC server refuses
# them (RESOURCE_EXHAUSTED) before decoding.


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
        if not m.content.strip():
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
