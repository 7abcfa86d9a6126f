"""The memory store keeps each image's bytes once, shared by every message that carries
it, and drops them with the last conversation that uses them."""

from __future__ import annotations

from modelrouter_server.context import MemoryStore
from modelrouter_server.domain import ImagePart, Message, Role


def _picture(data: bytes) -> Message:
    return Message(Role.USER, "Look.", parts=(ImagePart(data=data, media_type="image/png"),))


def _images(conversation_messages: tuple[Message, ...]) -> list[bytes]:
    return [p.data for m in conversation_messages for p in m.parts if isinstance(p, ImagePart)]


async def test_an_image_is_kept_once_and_outlives_one_conversation() -> None:
    store = MemoryStore()
    # Equal bytes in distinct objects: what two requests carrying one image deliver.
    first = await store.create([_picture(b"\x89PNG-one-image")], {})
    second = await store.create([_picture(bytes(bytearray(b"\x89PNG-one-image")))], {})
    await store.append(first.id, [_picture(b"\x89PNG-one-image")])
    assert store.image_count == 1

    stored = await store.get(first.id)
    images = _images(tuple(m.message for m in stored.messages))
    assert images == [b"\x89PNG-one-image"] * 2 and images[0] is images[1]

    await store.delete(first.id)
    kept = await store.get(second.id)
    assert _images(tuple(m.message for m in kept.messages)) == [b"\x89PNG-one-image"]
    assert store.image_count == 1
    await store.delete(second.id)
    assert store.image_count == 0
