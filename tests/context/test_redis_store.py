"""What only the Redis store has: replicas sharing it, a server that can go away, data
written by earlier versions, and a Redis Cluster (three nodes) beside one server."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from modelrouter_server.context import Conversation, RedisStore, SummaryRecord
from modelrouter_server.context._records import image_hash
from modelrouter_server.domain import ImagePart, Message, Role
from modelrouter_server.errors import ConversationNotFound, StoreError
from modelrouter_server.redis_connection import RedisClient
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from .conftest import RedisClusterServers, RedisServer, free_port, raw_redis, requires_redis_server

OPENING = (Message(Role.SYSTEM, "Be brief."),)
# How listing members order newest first (frozen with the key layout).
INVERT_FROM = 10**17 - 1


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


async def test_an_unreachable_cluster_is_a_store_error() -> None:
    url = f"redis+cluster://user:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="connect failed") as caught:
        await RedisStore.open(url, connect_timeout_s=1.0)
    assert "cluster 127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)


# Timeouts as guards only: on a loaded 2-core machine a connect can take seconds, and the
# store's production defaults (2 s, 5 s) would fail a correct test.
GUARDS = {"connect_timeout_s": 30.0, "timeout_s": 30.0}


@pytest.fixture(params=["server", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """One redis-server, or a three-node Redis Cluster (`redis+cluster://`)."""
    fixture = "redis_cluster" if request.param == "cluster" else "redis_server"
    target: RedisServer | RedisClusterServers = request.getfixturevalue(fixture)
    return target.url


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[RedisClient]:
    """A plain client on the same Redis, to look at and damage keys."""
    client = raw_redis(redis_url)
    yield client
    await client.aclose()


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


async def test_replicas_share_conversations_and_seqs(redis_url: str) -> None:
    """Three stores with their own connections, as three router replicas would have."""
    shared = prefix()
    replicas = [await RedisStore.open(redis_url, key_prefix=shared, **GUARDS) for _ in range(3)]
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


async def test_unreadable_data_is_a_store_error(redis_url: str, raw: RedisClient) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        created = await store.create(OPENING, {})
        await raw.rpush(f"{keys}conv:{{{created.id}}}:msgs", "{not json")
        with pytest.raises(StoreError, match="unreadable data"):
            await store.get(created.id)
    finally:
        await store.aclose()


async def test_a_refused_append_writes_nothing(redis_url: str, raw: RedisClient) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
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
        await store.aclose()


async def test_a_damaged_conversation_is_left_out_of_list(redis_url: str, raw: RedisClient) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
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
        await store.aclose()


PNG = b"\x89PNG\r\n\x1a\n-test-bytes"
OTHER_PNG = b"\x89PNG\r\n\x1a\n-other-bytes"


def with_image(text: str, data: bytes) -> Message:
    return Message(Role.USER, text, parts=(ImagePart(data=data, media_type="image/png"),))


def images_of(conversation: Conversation) -> list[bytes]:
    return [
        part.data
        for m in conversation.messages
        for part in m.message.parts
        if isinstance(part, ImagePart)
    ]


async def keys_under(raw: RedisClient, keys: str) -> set[str]:
    """Every key under a test's prefix, from every node of a cluster."""
    return {key async for key in raw.scan_iter(match=f"{keys}*")}


async def test_one_conversations_keys_share_a_slot(redis_cluster: RedisClusterServers) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_cluster.url, key_prefix=keys, **GUARDS)
    raw = raw_redis(redis_cluster.url)
    try:
        ids = []
        for i in range(5):
            created = await store.create((with_image(f"look {i}", PNG),), {})
            await store.append(created.id, turn(i), request_id=f"req-{i}")
            summary = SummaryRecord(Message(Role.USER, "short"), (1, 2))
            await store.append(created.id, turn(i + 10), summary=summary)
            ids.append(created.id)
        found = await keys_under(raw, keys)
        slots = set()
        for conversation_id in ids:
            mine = {k for k in found if conversation_id in k}
            # The hash, messages, summary links and request ids: all four, in one slot.
            assert len(mine) == 4, mine
            (slot,) = {key_slot(k.encode()) for k in mine}
            slots.add(slot)
        digest = image_hash(PNG)
        image_keys = {k for k in found if digest in k}
        assert len(image_keys) == 2 and len({key_slot(k.encode()) for k in image_keys}) == 1
        # The conversations themselves spread over the cluster's slots.
        assert len(slots) > 1
    finally:
        await raw.aclose()
        await store.aclose()


async def test_a_conversation_with_images_deletes_cleanly(redis_url: str, raw: RedisClient) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        first = await store.create((with_image("both", PNG), with_image("own", OTHER_PNG)), {})
        second = await store.create((with_image("shared", PNG),), {"k": "v"})
        await store.append(second.id, (with_image("again", PNG),))
        await store.delete(first.id)

        left = await keys_under(raw, keys)
        assert not {k for k in left if first.id in k}
        assert not {k for k in left if image_hash(OTHER_PNG) in k}
        refs = f"{keys}image:{{{image_hash(PNG)}}}:refs"
        assert await raw.smembers(refs) == {second.id}
        got = await store.get(second.id)
        assert images_of(got) == [PNG, PNG]
        assert [c.id for c in (await store.list()).conversations] == [second.id]

        await store.delete(second.id)
        assert await keys_under(raw, keys) == set()  # images, listing and all
    finally:
        await store.aclose()


async def test_an_append_to_a_missing_conversation_keeps_no_image(
    redis_url: str, raw: RedisClient
) -> None:
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        with pytest.raises(ConversationNotFound):
            await store.append("0" * 32, (with_image("lost", PNG),))
        assert await keys_under(raw, keys) == set()
    finally:
        await store.aclose()


async def test_ids_the_store_never_makes_are_not_found(redis_url: str) -> None:
    """Braces would spread one id's keys over several cluster slots."""
    store = await RedisStore.open(redis_url, key_prefix=prefix(), **GUARDS)
    try:
        for conversation_id in ("", "}x", "a{b}", "{"):
            with pytest.raises(ConversationNotFound):
                await store.get(conversation_id)
            with pytest.raises(ConversationNotFound):
                await store.delete(conversation_id)
            with pytest.raises(ConversationNotFound):
                await store.append(conversation_id, turn(1))
    finally:
        await store.aclose()


async def test_a_listing_member_left_without_its_conversation(
    redis_url: str, raw: RedisClient
) -> None:
    """A create or delete that failed half-way leaves a listing member: `list` skips it, and
    removes it once it is too old to belong to a create still under way."""
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        kept = await store.create(OPENING, {})
        now_us = time.time_ns() // 1000
        young = f"{INVERT_FROM - now_us:017d}:{'a' * 32}"
        old = f"{INVERT_FROM - (now_us - 3600 * 10**6):017d}:{'b' * 32}"
        await raw.zadd(f"{keys}conversations", {young: 0, old: 0})

        assert [c.id for c in (await store.list()).conversations] == [kept.id]
        members = await raw.zrange(f"{keys}conversations", 0, -1)
        assert old not in members and young in members
    finally:
        await store.aclose()


async def test_data_written_by_earlier_versions_reads_back(
    redis_url: str, raw: RedisClient
) -> None:
    """The key layout has not changed since the first version: keys written by hand as the
    earlier versions wrote them (images inline, before they were stored by hash; then by
    hash) read, list, take turns and delete on one server and on a cluster alike."""
    keys = prefix()
    conversation_id, tenant_id = "c" * 32, "d" * 32
    created_us = 1_780_000_000_000_000
    inline = json.dumps(
        [{"image": {"data": base64.b64encode(PNG).decode(), "media_type": "image/png", "url": ""}}]
    )
    by_hash = json.dumps(
        [{"image": {"sha256": image_hash(OTHER_PNG), "media_type": "image/png", "url": ""}}]
    )

    def message(content: str, parts: str = "") -> str:
        fields: dict[str, object] = {"role": "user", "content": content, "pinned": False}
        fields.update(importance=2, tokens=3, created_us=created_us, summarizes=[])
        if parts:
            fields["parts"] = parts
        return json.dumps(fields)

    for cid, tenant in ((conversation_id, ""), (tenant_id, "alice")):
        member = f"{INVERT_FROM - created_us:017d}:{cid}"
        conv = f"{keys}conv:{{{cid}}}"
        await raw.hset(
            conv,
            mapping={
                "created_us": str(created_us),
                "updated_us": str(created_us),
                "metadata": '{"k":"v"}',
                "member": member,
            },
        )
        if tenant:
            await raw.hset(conv, "tenant", tenant)
        index = f"{keys}tenant:{tenant}:conversations" if tenant else f"{keys}conversations"
        await raw.zadd(index, {member: 0})
    msgs = f"{keys}conv:{{{conversation_id}}}:msgs"
    await raw.rpush(msgs, message("plain"), message("inline", inline), message("hashed", by_hash))
    image = f"{keys}image:{{{image_hash(OTHER_PNG)}}}"
    await raw.set(image, base64.b64encode(OTHER_PNG).decode())
    await raw.sadd(f"{image}:refs", conversation_id)

    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        got = await store.get(conversation_id)
        assert [m.message.content for m in got.messages] == ["plain", "inline", "hashed"]
        assert images_of(got) == [PNG, OTHER_PNG]
        assert got.metadata == {"k": "v"}
        assert [c.id for c in (await store.list()).conversations] == [conversation_id]
        assert [c.id for c in (await store.list(owner="alice")).conversations] == [tenant_id]
        added = await store.append(conversation_id, turn(1))
        assert [m.seq for m in added.messages] == [3, 4]
        await store.delete(conversation_id)
        await store.delete(tenant_id, owner="alice")
        assert await keys_under(raw, keys) == set()
    finally:
        await store.aclose()


async def test_a_delete_whose_tidying_up_fails_has_still_deleted(
    redis_url: str, raw: RedisClient
) -> None:
    """The listing and the images are other slots, updated after the conversation is gone:
    their failure leaves garbage (logged), not a delete reported as failed that happened."""
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        created = await store.create((with_image("look", PNG),), {})
        # Both later steps now fail with WRONGTYPE.
        await raw.delete(f"{keys}conversations")
        await raw.set(f"{keys}conversations", "not a sorted set")
        refs = f"{keys}image:{{{image_hash(PNG)}}}:refs"
        await raw.delete(refs)
        await raw.set(refs, "not a set")

        await store.delete(created.id)
        with pytest.raises(ConversationNotFound):
            await store.get(created.id)
        assert not {k for k in await keys_under(raw, keys) if created.id in k}
    finally:
        await store.aclose()


@requires_redis_server
async def test_a_cluster_node_that_goes_away_fails_only_its_own_slots(tmp_path: Path) -> None:
    """Conversations on the other nodes still read and take turns; those on the stopped
    node fail with a StoreError (not retried, not hung)."""
    # Without full coverage, the other nodes keep serving their slots however long it takes.
    cluster = RedisClusterServers(tmp_path, "--cluster-require-full-coverage", "no")
    cluster.start()
    keys = prefix()
    store = await RedisStore.open(cluster.url, key_prefix=keys, **GUARDS)
    raw = raw_redis(cluster.url)
    try:
        assert isinstance(raw, RedisCluster)
        await raw.initialize()
        by_port: dict[int, list[str]] = {}
        for _ in range(100):  # ids are random: until two nodes hold a conversation
            created = await store.create(OPENING, {})
            slot = key_slot(f"{keys}conv:{{{created.id}}}".encode())
            port = int(raw.nodes_manager.get_node_from_slot(slot).port)
            by_port.setdefault(port, []).append(created.id)
            if len(by_port) == 2:
                break
        gone, kept = by_port
        next(node for node in cluster.nodes if node.port == gone).stop()

        for conversation_id in by_port[gone]:
            with pytest.raises(StoreError, match="failed"):
                await store.get(conversation_id)
        for conversation_id in by_port[kept]:
            await store.append(conversation_id, turn(1))
            assert (await store.get(conversation_id)).message_count == 3
    finally:
        await raw.aclose()
        await store.aclose()
        cluster.stop()


async def test_an_image_shared_with_a_conversation_being_deleted_is_never_lost(
    redis_url: str, raw: RedisClient
) -> None:
    """One conversation is deleted while another takes a turn with the same image, twenty
    times over: however the steps interleave, the image outlives the delete."""
    keys = prefix()
    store = await RedisStore.open(redis_url, key_prefix=keys, **GUARDS)
    try:
        kept = await store.create(OPENING, {})
        for i in range(20):
            image = PNG + bytes([i])
            going = await store.create((with_image("mine", image),), {})
            await asyncio.gather(
                store.delete(going.id), store.append(kept.id, (with_image(f"too {i}", image),))
            )
            assert images_of(await store.get(kept.id))[-1] == image
        refs = f"{keys}image:{{{image_hash(PNG + bytes([0]))}}}:refs"
        assert await raw.smembers(refs) == {kept.id}
    finally:
        await store.aclose()
