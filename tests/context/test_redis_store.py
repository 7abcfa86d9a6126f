"""What only the Redis store has: replicas sharing it, and a server that can go away."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from modelrouter_server.context import RedisStore
from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import StoreError

from .conftest import RedisServer, free_port, requires_redis_server

OPENING = (Message(Role.SYSTEM, "Be brief."),)


def turn(i: int) -> tuple[Message, Message]:
    return Message(Role.USER, f"question {i}"), Message(Role.ASSISTANT, f"answer {i}")


def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


async def test_an_unreachable_server_is_a_store_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError, match="connect failed") as caught:
        await RedisStore.open(url, connect_timeout_s=1.0)
    assert "127.0.0.1" in str(caught.value)


async def test_passwords_stay_out_of_error_messages() -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError) as caught:
        await RedisStore.open(url, connect_timeout_s=1.0)
    assert "hunter2" not in str(caught.value)


# Timeouts as guards only: on a loaded 2-core machine a connect can take seconds, and the
# store's production defaults (2 s, 5 s) would fail a correct test.
GUARDS = {"connect_timeout_s": 30.0, "timeout_s": 30.0}


@requires_redis_server
async def test_a_server_that_goes_away_is_a_store_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        store = await RedisStore.open(server.url, key_prefix=prefix())
        created = await store.create(OPENING, {})
    finally:
        server.stop()
    try:
        with pytest.raises(StoreError, match="failed"):
            await store.get(created.id)
        with pytest.raises(StoreError, match="failed"):
            await store.append(created.id, turn(1))
    finally:
        await store.aclose()


async def test_replicas_share_conversations_and_seqs(redis_server: RedisServer) -> None:
    """Three stores with their own connections, as three router replicas would have."""
    shared = prefix()
    replicas = [
        await RedisStore.open(redis_server.url, key_prefix=shared, **GUARDS) for _ in range(3)
    ]
    try:
        created = await replicas[0].create(OPENING, {"by": "replica 0"})
        await asyncio.gather(*(replicas[i % 3].append(created.id, turn(i)) for i in range(60)))
        for replica in replicas:
            got = await replica.get(created.id)
            assert [m.seq for m in got.messages] == list(range(121))
        listed = await replicas[2].list()
        assert [c.id for c in listed.conversations] == [created.id]
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_unreadable_data_is_a_store_error(redis_server: RedisServer) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_server.url, key_prefix=keys, **GUARDS)
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        created = await store.create(OPENING, {})
        await raw.rpush(f"{keys}conv:{{{created.id}}}:msgs", "{not json")
        with pytest.raises(StoreError, match="unreadable data"):
            await store.get(created.id)
    finally:
        await raw.aclose()
        await store.aclose()


async def test_a_refused_append_writes_nothing(redis_server: RedisServer) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_server.url, key_prefix=keys, **GUARDS)
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        created = await store.create(OPENING, {})
        conv = f"{keys}conv:{{{created.id}}}"
        # The summary-links key holds the wrong type: the script refuses before any write.
        await raw.set(f"{conv}:by", "garbage")
        before = await raw.hgetall(conv)
        with pytest.raises(StoreError, match="corrupt store"):
            await store.append(created.id, turn(1))
        assert await raw.llen(f"{conv}:msgs") == 1
        assert await raw.hgetall(conv) == before
    finally:
        await raw.aclose()
        await store.aclose()


async def test_a_damaged_conversation_is_left_out_of_list(redis_server: RedisServer) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_server.url, key_prefix=keys, **GUARDS)
    raw = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        good = await store.create(OPENING, {"k": "v"})
        bad = await store.create(OPENING, {})
        worse = await store.create(OPENING, {})
        await raw.hset(f"{keys}conv:{{{bad.id}}}", "metadata", "{oops")
        await raw.hset(f"{keys}conv:{{{worse.id}}}", "created_us", "9" * 40)
        listed = await store.list()
        assert [c.id for c in listed.conversations] == [good.id]
        with pytest.raises(StoreError, match="unreadable data"):
            await store.get(bad.id)
        assert (await store.get(good.id)).metadata == {"k": "v"}
    finally:
        await raw.aclose()
        await store.aclose()
