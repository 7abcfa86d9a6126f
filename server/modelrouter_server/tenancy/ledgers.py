"""Opening the ledger that the configuration names."""

from __future__ import annotations

from modelrouter_server.config.schema import RouterConfig, StoreKind
from modelrouter_server.config.security import LedgerKind
from modelrouter_server.tenancy.ledger import Ledger
from modelrouter_server.tenancy.redis_ledger import RedisLedger
from modelrouter_server.tenancy.sqlite_ledger import SQLiteLedger


async def open_ledger(config: RouterConfig) -> Ledger:
    """The ledger of `ledger.store` (`auto`: Redis when conversations are in Redis, so
    replicas share limits as they share conversations; in memory when conversations are
    (a throwaway server); else SQLite on this host).

    The caller owns it and must `await ledger.aclose()` at shutdown.
    """
    kind = config.ledger.store
    if kind is LedgerKind.AUTO:
        if config.context.store is StoreKind.MEMORY:
            return await SQLiteLedger.open(":memory:")
        redis = config.context.store is StoreKind.REDIS
        kind = LedgerKind.REDIS if redis else LedgerKind.SQLITE
    if kind is LedgerKind.REDIS:
        return await RedisLedger.open(config.ledger.redis_url or config.context.redis_url)
    return await SQLiteLedger.open(config.ledger.sqlite_path)
