"""Content hashes used as cache keys (never stored: only compared within one process)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from modelrouter_server.domain import Message


def content_digest(text: str) -> bytes:
    """A 128-bit hash of one text."""
    # surrogatepass: a lone surrogate in the caller's text must not make hashing fail.
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def messages_digest(messages: Sequence[Message]) -> bytes:
    """A 128-bit hash of the roles and contents of a message list, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        encoded = message.content.encode("utf-8", "surrogatepass")
        # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        digest.update(f"{message.role.value}:{len(encoded)}:".encode())
        digest.update(encoded)
    return digest.digest()
