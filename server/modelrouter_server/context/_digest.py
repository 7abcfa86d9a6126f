"""Content hashes used as cache keys (never stored: only compared within one process)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence

from modelrouter_server.domain import ImagePart, Message, TextPart, ToolCall, ToolResult

# Texts are encoded and hashed this many characters at a time: one encode of megabytes
# would hold the GIL (and so the event loop, from a worker thread) for tens of ms.
_SLICE_CHARS = 1 << 18


def _utf8_slices(text: str) -> Iterator[bytes]:
    # surrogatepass: a lone surrogate in the caller's text must not make hashing fail.
    # Slices never split a code point, so they concatenate to the text's encoding.
    for start in range(0, len(text), _SLICE_CHARS):
        yield text[start : start + _SLICE_CHARS].encode("utf-8", "surrogatepass")


def message_text(message: Message) -> str:
    """The text a message is counted and hashed by: its content, and for parts the text
    a provider is sent for them (a tool call's name and arguments, a result's content).
    Images add no text: their tokens are counted apart, per model (`images`)."""
    if not message.parts:
        return message.content
    pieces = [message.content] if message.content else []
    for part in message.parts:
        if isinstance(part, TextPart):
            pieces.append(part.text)
        elif isinstance(part, ToolCall):
            arguments = json.dumps(part.arguments, separators=(",", ":"), sort_keys=True)
            pieces.append(f"{part.id} {part.name} {arguments}")
        elif isinstance(part, ToolResult):
            pieces.append(f"{part.tool_call_id} {part.is_error} {part.content}")
    return "\n".join(pieces)


def content_digest(text: str) -> bytes:
    """A 128-bit hash of one text."""
    digest = hashlib.blake2b(digest_size=16)
    for part in _utf8_slices(text):
        digest.update(part)
    return digest.digest()


def messages_digest(messages: Sequence[Message]) -> bytes:
    """A 128-bit hash of the roles and contents of a message list, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        content = content_digest(message_text(message))
        for part in message.parts:
            if isinstance(part, ImagePart):
                digest.update(hashlib.sha256(part.data).digest() + part.url.encode())
        # A fixed-size digest per message keeps ("ab", "c") and ("a", "bc") apart.
        digest.update(f"{message.role.value}:".encode())
        digest.update(content)
    return digest.digest()
