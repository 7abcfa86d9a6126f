"""Checks on what callers send, on domain values (no protobuf here).

`api.convert` turns protos into domain values and calls these; `generation` calls
`check_role_order` again once a conversation's stored history is known, and routing calls
`thinking_budget_problem` once a model's output budget is known. Every rejection is a
`RequestError` naming the request field, so the status table answers INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import RequestError

MIN_THINKING_BUDGET = 1024
"""Anthropic's floor for `thinking.budget_tokens`."""


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
