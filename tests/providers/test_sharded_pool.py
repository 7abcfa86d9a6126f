"""A large HTTP/1.1 pool split into shards: every connection of every shard is used, and
a shard's connections come back when its responses close."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from modelrouter_server.domain import Message, Role, StreamEvent
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import ProviderTimeout
from modelrouter_server.providers import Connection
from modelrouter_server.providers.anthropic_provider import AnthropicProvider
from modelrouter_server.providers.sharded import shard_sizes

from .support import CLAUDE, request


def test_a_pool_splits_into_even_shards_that_add_up() -> None:
    assert shard_sizes(1000, 64) == [63] * 8 + [62] * 8
    assert sum(shard_sizes(1000, 64)) == 1000
    assert shard_sizes(5, 2) == [2, 2, 1]
    assert shard_sizes(64, 64) == [64]


async def _hold(provider: AnthropicProvider, count: int) -> list[AsyncGenerator[StreamEvent]]:
    """`count` streams, each stalled after its first event: each holds a connection."""
    held = []
    for _ in range(count):
        stream = provider.stream(request(CLAUDE, Message(Role.USER, "Hi.")))
        assert isinstance(stream, AsyncGenerator)
        held.append(stream)
        await anext(stream)
    return held


async def test_every_shard_serves_and_gets_its_connections_back(emulator: Emulator) -> None:
    emulator.set_behavior(CLAUDE, Behavior(stall_after_tokens=1, stall_s=30.0))
    connection = Connection(
        api_key="emulator",
        base_url=emulator.base_url,
        max_connections=5,
        shard_connections=2,
        pool_timeout_s=0.3,
    )
    provider = AnthropicProvider("anthropic", connection, emulated=True)
    try:
        for _ in range(2):  # the second round needs the first round's connections back
            held = await _hold(provider, 5)  # 2 + 2 + 1: every connection of every shard
            with pytest.raises(ProviderTimeout, match="no free connection in the pool"):
                await provider.complete(request(CLAUDE, Message(Role.USER, "Again.")))
            for stream in held:
                await stream.aclose()
    finally:
        await provider.aclose()
