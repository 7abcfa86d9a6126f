"""Continuing a partial answer: a trailing assistant message is text the model must extend."""

from __future__ import annotations

from collections.abc import Sequence

from modelrouter_server.domain import Message, Role


def split_partial_answer(messages: Sequence[Message]) -> tuple[tuple[Message, ...], str | None]:
    """The conversation before a trailing assistant message, and that message's text.

    The text is None when the conversation does not end with an assistant message.
    """
    if messages and messages[-1].role is Role.ASSISTANT:
        return tuple(messages[:-1]), messages[-1].content
    return tuple(messages), None


def strip_partial_answer(text: str) -> tuple[str, str]:
    """The partial answer to send, and the trailing whitespace taken off it.

    Anthropic refuses a prefill ending in whitespace, and a model continuing after
    trailing whitespace tokenizes it badly (its tokens carry their leading space), so
    every provider sends the text without it and filters the output with
    `EchoedWhitespaceFilter`.
    """
    kept = text.rstrip()
    return kept, text[len(kept) :]


class EchoedWhitespaceFilter:
    """Drops, from the start of an answer, whitespace that was stripped off its prefix.

    The partial answer is sent stripped (see `strip_partial_answer`), and the model
    usually starts its continuation with that whitespace. The caller already has the
    original text, so what is handed back must continue right after it: the stripped
    characters are dropped from the output as long as the output repeats them.
    """

    def __init__(self, stripped: str) -> None:
        self._pending = stripped

    def feed(self, text: str) -> str:
        """The part of the next piece of output that is new to the caller."""
        if not self._pending:
            return text
        matched = 0
        limit = min(len(text), len(self._pending))
        while matched < limit and text[matched] == self._pending[matched]:
            matched += 1
        if matched == len(text):
            self._pending = self._pending[matched:]
            return ""
        self._pending = ""
        return text[matched:]
