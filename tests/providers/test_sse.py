"""The SSE framing the providers read their streams with, cut at awkward places."""

from __future__ import annotations

import pytest
from modelrouter_server.providers.sse import ServerSentEvent, SSEDecoder, json_object

BODY = (
    b": keep-alive\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: first\ndata:second\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    ServerSentEvent(b"message_start", b'{"a": 1}'),
    ServerSentEvent(None, b"first\nsecond"),
    ServerSentEvent(None, b"[DONE]"),
]


def _decode(chunks: list[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_every_line_end_and_every_cut_gives_the_same_events(line_end: bytes) -> None:
    body = BODY.replace(b"\n", line_end)
    assert _decode([body]) == EXPECTED
    for cut in range(1, len(body)):
        assert _decode([body[:cut], body[cut:]]) == EXPECTED, cut


def test_one_byte_at_a_time() -> None:
    body = BODY.replace(b"\n", b"\r\n")
    assert _decode([body[i : i + 1] for i in range(len(body))]) == EXPECTED


def test_an_event_the_body_does_not_close_is_dropped() -> None:
    assert _decode([b"data: {}\n\ndata: [DONE]\n"]) == [ServerSentEvent(None, b"{}")]


def test_a_json_value_that_is_not_an_object_reads_as_empty() -> None:
    assert json_object(b"[1, 2]") == {}
    assert json_object(b'{"type": "ping" }') == {"type": "ping"}
