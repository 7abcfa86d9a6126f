"""Conversations on Redis shared by two router replicas, and what callers see when the
store goes away: a clear UNAVAILABLE, never UNKNOWN, and the server stays up."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from context.conftest import RedisServer, requires_redis_server
from modelrouter_client import system

from .conftest import StartRouter


@requires_redis_server
async def test_two_replicas_share_conversations_and_report_a_lost_store_as_unavailable(
    start_router: StartRouter, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        store = {"store": "redis", "redis_url": redis.url}
        first = await start_router(context=store)
        second = await start_router(context=store)
        created = await first.create_conversation([system("Shared.")])
        await second.generate("Hi from replica two", conversation_id=created.id)
        seen = await first.get_conversation(created.id)
        assert [m.message.content for m in seen.messages][:2] == ["Shared.", "Hi from replica two"]
        assert seen.message_count == 3
    finally:
        redis.stop()

    for call in (
        first.get_conversation(created.id),
        first.generate("Are you there?", conversation_id=created.id),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "redis" in (caught.value.details() or "").lower()
    # Requests that need no store are still served.
    assert (await first.generate("Still serving?")).text
