"""One process hammering a shared ledger: `python -m tenancy.ledger_worker KIND WHERE
PREFIX ATTEMPTS`. Prints how many requests it got admitted (the clock is frozen, so the
rate limit does not refill during the run)."""

from __future__ import annotations

import asyncio
import sys

from modelrouter_server.tenancy import Ledger, Limits, QuotaExceeded, RedisLedger, SQLiteLedger

from tenancy.conftest import NOON

# Both limits bind at 30: 30 requests, or 30 holds of $0.01 kept until the end.
LIMITS = Limits(requests_per_minute=30, budget_usd_per_day=0.30)


async def main(kind: str, where: str, prefix: str, attempts: int) -> int:
    ledger: Ledger
    if kind == "sqlite":
        ledger = await SQLiteLedger.open(where, clock=lambda: NOON)
    else:
        ledger = await RedisLedger.open(where, key_prefix=prefix, clock=lambda: NOON)
    admitted = 0
    try:
        for _ in range(attempts):
            try:
                await ledger.reserve(
                    "shared", LIMITS, tokens=1, cost_usd=0.01, stream=False, lease_s=600
                )
            except QuotaExceeded:
                continue
            admitted += 1
    finally:
        await ledger.aclose()
    return admitted


if __name__ == "__main__":
    kind, where, prefix, attempts = sys.argv[1:5]
    print(asyncio.run(main(kind, where, prefix, int(attempts))))
