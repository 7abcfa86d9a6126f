"""Conversation replies whose message texts are large, encoded a slice at a time.

Serializing a protobuf message is one C call that holds the GIL for its whole length
(~40 ms for 20 MB: the encoder's growing buffer and the final copy), so even in a worker
thread it stalls the event loop that long. Here the large texts are encoded by the router
in 1 MiB slices, and protobuf serializes only the rest, which is small. It rests on two
rules of the wire format: fields may come in any order, and a singular message field that
appears twice is merged. So a StoredMessage serialized without its text, followed by a
second `message` field that holds only `content`, decodes as the whole message.
"""

from __future__ import annotations

import dataclasses

from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_server.api.convert import conversation_to_pb
from modelrouter_server.context import Conversation

LARGE_TEXT_CHARS = 64 * 1024
"""Texts from this length are encoded apart."""

_SLICE_CHARS = 1024 * 1024
_REPLY_CONVERSATION = 1  # `conversation` in CreateConversationResponse and GetConversationResponse
_MESSAGES = pb.Conversation.DESCRIPTOR.fields_by_name["messages"].number
_STORED_MESSAGE = pb.StoredMessage.DESCRIPTOR.fields_by_name["message"].number
_CONTENT = pb.Message.DESCRIPTOR.fields_by_name["content"].number
_EXTRA_FRAMING = 2 * 11  # two more tags and length prefixes per text encoded apart


class _Chunks:
    """Byte strings to be joined once, at the end, with their total length."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def add_field(self, number: int, body: _Chunks) -> None:
        """`body` as a length-delimited field `number`."""
        self.add(_varint(number << 3 | 2) + _varint(body.size))
        self.parts.extend(body.parts)
        self.size += body.size


def encode_conversation_reply(
    conversation: Conversation, *, first_seq: int, page_size: int, max_bytes: int
) -> bytes:
    """The serialized Create/GetConversationResponse carrying the page of `conversation`
    that `conversation_to_pb` would put in it."""
    texts: dict[int, _Chunks] = {}
    messages = []
    for stored in conversation.messages:
        content = stored.message.content
        if stored.seq >= first_seq and len(content) >= LARGE_TEXT_CHARS:
            text = _Chunks()
            for start in range(0, len(content), _SLICE_CHARS):
                text.add(content[start : start + _SLICE_CHARS].encode())
            texts[stored.seq] = text
            message = dataclasses.replace(stored.message, content="")
            stored = dataclasses.replace(stored, message=message)
        messages.append(stored)
    page = conversation_to_pb(
        dataclasses.replace(conversation, messages=tuple(messages)),
        first_seq=first_seq,
        page_size=page_size,
        max_bytes=max_bytes,
        unsized={seq: text.size + _EXTRA_FRAMING for seq, text in texts.items()},
    )
    body = _Chunks()
    for item in page.messages:
        encoded = _Chunks()
        encoded.add(item.SerializeToString())
        apart = texts.get(item.seq)
        if apart is not None:
            only_content = _Chunks()
            only_content.add_field(_CONTENT, apart)
            encoded.add_field(_STORED_MESSAGE, only_content)
        body.add_field(_MESSAGES, encoded)
    del page.messages[:]
    whole = _Chunks()
    whole.add(page.SerializeToString())
    whole.parts.extend(body.parts)
    whole.size += body.size
    reply = _Chunks()
    reply.add_field(_REPLY_CONVERSATION, whole)
    return b"".join(reply.parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
