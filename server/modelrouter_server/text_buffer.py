"""Text that arrives in many small pieces (a stream's deltas), held compactly.

A stream keeps the text it has relayed: to store the turn, to count usage a provider did
not report, to continue the answer on another model. Kept as a list of its deltas, a
token of ~4 characters costs a str object (~50 bytes) and a list slot: ~15 times the text.
A client that stops reading holds the stream open with everything relayed so far, so
across many such clients that was most of the memory the router added.
"""

from __future__ import annotations

# Pieces joined into one block at a time: the joins copy each character about twice in
# all, and the pieces not yet joined stay few.
_BLOCK_PIECES = 64


class TextBuffer:
    """Appends pieces of text; `str(buffer)` is their concatenation."""

    __slots__ = ("_blocks", "_chars", "_pieces")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._pieces: list[str] = []
        self._chars = 0

    def append(self, piece: str) -> None:
        self._pieces.append(piece)
        self._chars += len(piece)
        if len(self._pieces) >= _BLOCK_PIECES:
            self._blocks.append("".join(self._pieces))
            self._pieces.clear()

    def __len__(self) -> int:
        """The characters held."""
        return self._chars

    def __str__(self) -> str:
        return "".join(self._blocks) + "".join(self._pieces)
