"""The validation module on domain values: role order, stored histories, thinking budgets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from modelrouter_server.config import ConfigError, LimitsConfig, default_config_path, load_config
from modelrouter_server.domain import (
    Message,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolResult,
    ToolSettings,
)
from modelrouter_server.errors import RequestError
from modelrouter_server.validation import (
    MIN_THINKING_BUDGET,
    check_messages,
    check_metadata,
    check_role_order,
    check_stored_history,
    check_thinking_budget,
    check_tools,
    decode_message_page_token,
    encode_message_page_token,
    thinking_budget_problem,
)

S, U, A = Role.SYSTEM, Role.USER, Role.ASSISTANT


def msgs(*roles: Role) -> tuple[Message, ...]:
    return tuple(Message(r, f"m{i}") for i, r in enumerate(roles))


@pytest.mark.parametrize(
    ("roles", "field"),
    [
        ((A, U), "messages[0].role"),
        ((U, U), "messages[1].role"),
        ((U, S), "messages[1].role"),
        ((U, A), "messages"),
        ((S,), "messages"),
    ],
)
def test_prompt_role_order_names_the_field(roles: tuple[Role, ...], field: str) -> None:
    with pytest.raises(RequestError) as err:
        check_role_order(msgs(*roles))
    assert err.value.field == field


def test_prompt_role_order_accepts_alternation_ending_with_user() -> None:
    check_role_order(msgs(S, S, U, A, U))


def test_offset_numbers_messages_after_a_history() -> None:
    with pytest.raises(RequestError) as err:
        check_role_order(msgs(U, A, A), offset=-2)
    assert err.value.field == "messages[0].role"


@pytest.mark.parametrize(
    ("roles", "field"),
    [
        ((A,), "messages[0].role"),
        ((U, U), "messages[1].role"),
        ((U,), "messages[0].role"),
        ((S, U, A, U), "messages[3].role"),
        ((U, A, S), "messages[2].role"),
    ],
)
def test_stored_history_must_be_continuable(roles: tuple[Role, ...], field: str) -> None:
    with pytest.raises(RequestError) as err:
        check_stored_history(msgs(*roles))
    assert err.value.field == field


@pytest.mark.parametrize("roles", [(), (S,), (S, U, A), (U, A, U, A)])
def test_stored_history_accepts_what_a_user_turn_can_follow(roles: tuple[Role, ...]) -> None:
    check_stored_history(msgs(*roles))
    # ...and a later Generate's user turn then passes the prompt check.
    check_role_order((*msgs(*roles), Message(U, "next")))


@pytest.mark.parametrize(
    ("budget", "output", "ok"),
    [
        (0, 0, True),
        (0, 10, True),
        (MIN_THINKING_BUDGET, 0, True),
        (MIN_THINKING_BUDGET - 1, 0, False),
        (-1, 0, False),
        (2000, 2000, False),
        (2000, 2001, True),
    ],
)
def test_thinking_budget_rule(budget: int, output: int, ok: bool) -> None:
    assert (thinking_budget_problem(budget, output) is None) is ok
    if ok:
        check_thinking_budget(budget, output)
    else:
        with pytest.raises(RequestError) as err:
            check_thinking_budget(budget, output)
        assert err.value.field == "thinking_budget_tokens"


def test_limits_are_parsed_strictly_and_cross_checked(tmp_path: Path) -> None:
    base = default_config_path().read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(base.replace("max_id_length = 128", "max_id_length = 128\nmax_idd = 1"))
    with pytest.raises(ConfigError, match=r"limits\.max_idd"):
        load_config(bad)
    bad.write_text(base.replace("max_message_bytes = 2097152", "max_message_bytes = 9000000"))
    with pytest.raises(ConfigError, match=r"limits: .*max_message_bytes is larger"):
        load_config(bad)


def test_a_message_page_token_round_trips_and_bad_ones_name_the_field() -> None:
    assert decode_message_page_token(encode_message_page_token(1234)) == 1234
    for token in ("", "m", "garbage", "9" * 30, encode_message_page_token(2**63)):
        with pytest.raises(RequestError) as err:
            decode_message_page_token(token)
        assert err.value.field == "message_page_token"


def test_metadata_limits_count_entries_and_bytes() -> None:
    limits = LimitsConfig(max_metadata_entries=2, max_metadata_bytes=10)
    check_metadata({"a": "1", "b": "2"}, limits)
    for metadata in ({"a": "", "b": "", "c": ""}, {"k": "é" * 5}):
        with pytest.raises(RequestError) as err:
            check_metadata(metadata, limits)
        assert err.value.field == "metadata"


_LONG = "x" * 20_000


@pytest.mark.parametrize(
    ("check", "field"),
    [
        (
            lambda: check_tools(
                ToolSettings(tools=(Tool("known"),), choice=ToolChoice(ToolChoiceMode.TOOL, _LONG))
            ),
            "tool_choice.name",
        ),
        (
            lambda: check_messages(
                [
                    Message(U, "hi"),
                    Message(A, "", parts=(ToolCall(_LONG, "f"), ToolCall(_LONG, "g"))),
                ],
                LimitsConfig(),
            ),
            "messages[1].parts[1].tool_call.id",
        ),
        (
            lambda: check_role_order(
                [
                    Message(U, "hi"),
                    Message(A, "", parts=(ToolCall("c1", "f"),)),
                    Message(Role.TOOL, "", parts=(ToolResult(_LONG, "r"),)),
                ]
            ),
            "messages[2].parts[0].tool_result.tool_call_id",
        ),
    ],
)
def test_tool_errors_quote_a_long_caller_value_cut_short(
    check: Callable[[], None], field: str
) -> None:
    with pytest.raises(RequestError) as err:
        check()
    assert err.value.field == field
    assert len(err.value.description) < 300
    assert "(20000 characters)" in err.value.description


def test_a_tool_name_with_a_trailing_newline_is_refused() -> None:
    # `$` in a pattern matches before a final newline: the name must match in full.
    with pytest.raises(RequestError) as err:
        check_tools(ToolSettings(tools=(Tool("lookup\n"),)))
    assert err.value.field == "tools[0].name"
    with pytest.raises(RequestError) as err:
        check_messages(
            [Message(U, "hi"), Message(A, "", parts=(ToolCall("c1", "lookup\n"),))],
            LimitsConfig(),
        )
    assert err.value.field == "messages[1].parts[0].tool_call.name"
