"""Opening the conversation store that the configuration names."""

from __future__ import annotations

from modelrouter_server.config.schema import ContextConfig, StoreKind
from modelrouter_server.context.memory_store import MemoryStore
from modelrouter_server.context.redis_store import RedisStore
from modelrouter_server.context.sqlite_store import SQLiteStore
from modelrouter_server.context.store import ConversationStore


async def open_store(config: ContextConfig) -> ConversationStore:
    """The store of `context.store`, opened and checked; `StoreError` when it is unusable.

    The caller owns it and must `await store.aclose()` at shutdown.
    """
    if config.store is StoreKind.SQLITE:
        return await SQLiteStore.open(config.sqlite_path)
    if config.store is StoreKind.REDIS:
        return await RedisStore.open(config.redis_url)
    return MemoryStore()
