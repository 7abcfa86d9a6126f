"""Counting a text's tokens in bounded slices.

tiktoken splits text into pieces (words, numbers, runs of punctuation or whitespace) and
runs byte-pair merging on each piece; merging slows down sharply with piece length, so one
long run of a repeated character (20 MB of "a" is one piece) takes many seconds more than
ordinary text of the same size. Counting in slices keeps every call short: a slice ends
just before a space that follows a non-space character, which is always a piece boundary
(no piece ends in a space unless it is all whitespace), so ordinary text counts exactly.
Only a stretch with no such boundary is cut inside a piece, which can add about one token
per cut: an over-count, the safe side for fitting a window.

tiktoken releases the GIL while it encodes: slices counted in a worker thread leave the
event loop free.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import tiktoken

SLICE_CHARS = 4_096
"""A slice ends at the last piece boundary before this many characters."""
HARD_CUT_CHARS = 2_048
"""Without a piece boundary in the second half of a slice, the slice is this long."""
_BOUNDARY = re.compile(r"(?<=\S) ")


def slices(text: str) -> Iterator[str]:
    """`text` in consecutive slices whose token counts add up to the text's (see the
    module docstring for the one exception)."""
    start, end = 0, len(text)
    while end - start > SLICE_CHARS:
        limit = start + SLICE_CHARS
        cut = start + HARD_CUT_CHARS
        for match in _BOUNDARY.finditer(text, start + HARD_CUT_CHARS, limit):
            cut = match.start()
        yield text[start:cut]
        start = cut
    yield text[start:]


def count_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    """The tokens of `text` as ordinary text (special-token text is not special)."""
    if len(text) <= SLICE_CHARS:
        return len(encoding.encode_ordinary(text))
    return sum(len(encoding.encode_ordinary(part)) for part in slices(text))
