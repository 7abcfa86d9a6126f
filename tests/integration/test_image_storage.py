"""Conversations keep each image's bytes once, by content hash, over real gRPC: the same
image in two messages and two conversations is one row (SQLite) or one key (Redis, on one
server or a cluster), reads
back byte-identical, and deleting one conversation leaves the other's image intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from context.conftest import raw_redis
from modelrouter_client import AsyncModelRouterClient, assistant, pb
from modelrouter_testsupport.images import png

from .conftest import StartRouter
from .redis_fixture import redis_cluster_url, redis_url  # noqa: F401  # fixtures, used by name

CLAUDE = "claude-3-7-sonnet-20250219"
# A size no other test uses, so the hash is this test's own.
PICTURE = pb.Image(data=png(1317, 411), media_type="image/png")


def _with_picture(text: str) -> pb.Message:
    return pb.Message(role=pb.ROLE_USER, content=text, parts=[pb.Part(image=PICTURE)])


async def _stored_images(store: dict[str, Any]) -> int:
    if store["store"] == "sqlite":
        with sqlite3.connect(store["sqlite_path"]) as db:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    client = raw_redis(store["redis_url"])
    try:
        keys = [k async for k in client.scan_iter(match="*image:{*}")]
    finally:
        await client.aclose()
    return len(keys)


def _images_of(conversation: pb.Conversation) -> list[bytes]:
    return [
        p.image.data
        for m in conversation.messages
        for p in m.message.parts
        if p.WhichOneof("kind") == "image"
    ]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"store": "sqlite", "sqlite_path": str(tmp_path / "conversations.db")}
    fixture = "redis_cluster_url" if request.param == "redis-cluster" else "redis_url"
    url: str = request.getfixturevalue(fixture)
    return {"store": "redis", "redis_url": url}


async def test_an_image_is_stored_once_and_outlives_one_conversation(
    start_router: StartRouter, store: dict[str, Any]
) -> None:
    client: AsyncModelRouterClient = await start_router(context=store)
    first = await client.create_conversation([_with_picture("Look."), assistant("I see it.")])
    second = await client.create_conversation([_with_picture("And this?"), assistant("Same.")])
    # A turn adds the same image to the first conversation again.
    await client.generate([_with_picture("Once more.")], model=CLAUDE, conversation_id=first.id)

    assert await _stored_images(store) == 1
    stored_first = await client.get_conversation(first.id)
    assert _images_of(stored_first) == [PICTURE.data, PICTURE.data]

    await client.delete_conversation(first.id)
    stored_second = await client.get_conversation(second.id)
    assert _images_of(stored_second) == [PICTURE.data]
    assert await _stored_images(store) == 1

    await client.delete_conversation(second.id)
    assert await _stored_images(store) == 0
