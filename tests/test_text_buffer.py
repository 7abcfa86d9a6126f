"""TextBuffer: the pieces of a stream's text, held compactly."""

from __future__ import annotations

from modelrouter_server.text_buffer import TextBuffer


def test_holds_the_concatenation_of_its_pieces_across_blocks() -> None:
    buffer = TextBuffer()
    pieces = [f" w{i}" for i in range(1000)]
    for piece in pieces:
        buffer.append(piece)
    assert str(buffer) == "".join(pieces)
    assert len(buffer) == len("".join(pieces))


def test_empty() -> None:
    buffer = TextBuffer()
    assert str(buffer) == ""
    assert len(buffer) == 0
    assert not buffer
