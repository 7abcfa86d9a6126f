"""Continuing a partial answer: what is sent and what is handed back."""

from __future__ import annotations

from modelrouter_server.domain import Message, Role
from modelrouter_server.providers.continuation import (
    EchoedWhitespaceFilter,
    split_partial_answer,
    strip_partial_answer,
)


def test_trailing_assistant_message_is_the_partial_answer() -> None:
    question = Message(Role.USER, "Q")
    history, partial = split_partial_answer([question, Message(Role.ASSISTANT, "A part")])

    assert history == (question,)
    assert partial == "A part"


def test_no_partial_answer_when_the_user_spoke_last() -> None:
    messages = [Message(Role.ASSISTANT, "A"), Message(Role.USER, "Q")]

    assert split_partial_answer(messages) == (tuple(messages), None)


def test_strip_partial_answer_keeps_what_it_took() -> None:
    assert strip_partial_answer("Once upon \n") == ("Once upon", " \n")
    assert strip_partial_answer("Once upon") == ("Once upon", "")
    assert strip_partial_answer("  ") == ("", "  ")


def feed_all(stripped: str, pieces: list[str]) -> str:
    echo = EchoedWhitespaceFilter(stripped)
    return "".join(echo.feed(piece) for piece in pieces)


def test_echoed_whitespace_is_dropped() -> None:
    assert feed_all(" ", [" time", " there"]) == "time there"


def test_whitespace_echoed_across_pieces_is_dropped() -> None:
    assert feed_all("\n\n", ["", "\n", "\nNext", " line"]) == "Next line"


def test_only_the_echoed_part_is_dropped() -> None:
    # The prefix lost one newline; the model wrote two: one is new.
    assert feed_all("\n", ["\n\nNext"]) == "\nNext"


def test_different_whitespace_is_kept() -> None:
    assert feed_all(" ", ["\nNext"]) == "\nNext"


def test_matching_stops_at_the_first_new_character() -> None:
    assert feed_all("  ", [" x", " y"]) == "x y"


def test_nothing_stripped_passes_everything() -> None:
    assert feed_all("", [" a", " b"]) == " a b"
