"""A leg's output, kept as the runs of its pieces over the relay's text: joined in the
order generated, whatever came before the leg."""

from __future__ import annotations

from modelrouter_server.resilience.chain_stream import _LegOutput
from modelrouter_server.text_buffer import TextBuffer


def test_a_leg_output_joins_its_pieces_in_the_order_generated() -> None:
    relay = TextBuffer()
    relay.append("an earlier leg's text. ")
    output = _LegOutput(len(relay))
    pieces = [("Let me ", False), ("think.", False), ("Hello", True), (" there", True)]
    pieces += [("", True), ('{"city":', False), (" and more", True)]
    for piece, relayed_text in pieces:
        output.append(piece, relayed_text=relayed_text)
        if relayed_text:
            relay.append(piece)
    assert output.joined(str(relay)) == "".join(piece for piece, _ in pieces)


def test_a_leg_with_nothing_generated_joins_to_nothing() -> None:
    assert _LegOutput(5).joined("12345") == ""
