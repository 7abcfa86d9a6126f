"""Tenants: who is calling (API keys), what they may use, and what they have used.

- `keys`: making keys and finding a key's tenant (constant-time, sha256 only);
- `ledger`: the quota and spend interface, with `SQLiteLedger` (one host) and
  `RedisLedger` (every replica on one Redis).
"""

from modelrouter_server.errors import QuotaExceeded
from modelrouter_server.tenancy.keys import KeyRing, key_digest, new_key
from modelrouter_server.tenancy.ledger import (
    Ledger,
    Limits,
    PeriodUsage,
    Reservation,
    TenantUsage,
)
from modelrouter_server.tenancy.ledgers import open_ledger
from modelrouter_server.tenancy.redis_ledger import RedisLedger
from modelrouter_server.tenancy.sqlite_ledger import SQLiteLedger

__all__ = [
    "KeyRing",
    "Ledger",
    "Limits",
    "PeriodUsage",
    "QuotaExceeded",
    "RedisLedger",
    "Reservation",
    "SQLiteLedger",
    "TenantUsage",
    "key_digest",
    "new_key",
    "open_ledger",
]
