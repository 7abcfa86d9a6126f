"""A provider-neutral view of a request's conversation.

Both APIs reduce their messages to `Turn`s, so that the same conversation gets the same
answer whichever API asks: the router moves a conversation between providers and expects
the answer to carry on where the other one stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INSTRUCTION_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class Turn:
    """One message's role and text; system and developer instructions both read "system"."""

    role: str
    text: str


def content_text(content: object) -> str:
    """The text of a message's content: a string, or the text of its text blocks (other
    blocks, such as images, carry no text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        )
    return ""


def turn(role: str, content: object) -> Turn:
    return Turn("system" if role in INSTRUCTION_ROLES else role, content_text(content))


def conversation_key(turns: Sequence[Turn]) -> bytes:
    """A stable byte string that identifies the conversation, to seed its answer."""
    parts = [f"{len(t.role)}:{t.role}{len(t.text)}:{t.text}" for t in turns]
    return "".join(parts).encode("utf-8")
