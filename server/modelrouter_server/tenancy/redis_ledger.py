"""The shared ledger: Redis, for every worker and replica that uses the same server.

Keys per tenant (the `{tenant}` hash tag keeps them in one cluster slot, so a script may
touch them all, on one server or a Redis Cluster: `redis+cluster://`; tenant names hold no
braces, so the tag is always the whole name):

    <prefix>ledger:{<tenant>}:rates           hash: rpm, tpm -> GCRA theoretical arrival time
    <prefix>ledger:{<tenant>}:holds           hash: reservation id -> "cost|day|month|stream"
    <prefix>ledger:{<tenant>}:holds_exp       sorted set: reservation id by lease expiry
    <prefix>ledger:{<tenant>}:spend:d:<day>   hash: cost_usd, tokens, requests (kept 40 days)
    <prefix>ledger:{<tenant>}:spend:m:<month> hash: the same per month (kept 400 days)

`reserve` and `settle` are Lua scripts, which Redis runs atomically with respect to every
other client: the checks and the writes of one reservation cannot interleave with another's,
whichever replica sent it. Each script checks everything before its first write, so a
refusal takes nothing. Times come from the caller's clock (replicas are assumed to keep
their clocks in sync, as NTP does).
"""

from __future__ import annotations

import time
from typing import Any

from modelrouter_server.errors import QuotaExceeded, StoreError
from modelrouter_server.redis_connection import REDIS_ERRORS, RedisClient, Script, open_client
from modelrouter_server.tenancy.ledger import (
    Clock,
    Limits,
    PeriodUsage,
    Reservation,
    TenantUsage,
    budget_refusal,
    day_of,
    month_of,
    new_reservation_id,
    rate_refusal,
    seconds_to_next_day,
    seconds_to_next_month,
)

_DAY_TTL_S = 40 * 86400
_MONTH_TTL_S = 400 * 86400

_RESERVE = """
local rates, holds, expiry, spend_day, spend_month = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
local rpm, tpm, max_streams = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local budget_day, budget_month = tonumber(ARGV[5]), tonumber(ARGV[6])
local tokens, cost, is_stream = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
local id, expires, day, month = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
-- Sums of float dollars: 30 x 0.01 is a hair over 0.30.
local epsilon = 1e-9

local stale = redis.call('ZRANGEBYSCORE', expiry, '-inf', now)
for _, old in ipairs(stale) do redis.call('HDEL', holds, old) end
if #stale > 0 then redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now) end

local function gcra(field, per_minute, units)
  local tat = tonumber(redis.call('HGET', rates, field) or '0')
  local new_tat = math.max(tat, now) + units * 60.0 / per_minute
  local over = new_tat - now - 60.0
  if over > 1e-9 then return nil, over end
  return new_tat, 0
end

local new_rpm, new_tpm, wait
if rpm then
  new_rpm, wait = gcra('rpm', rpm, 1)
  if not new_rpm then return {'requests_per_minute', tostring(wait), '0'} end
end
if tpm then
  new_tpm, wait = gcra('tpm', tpm, tokens)
  if not new_tpm then return {'tokens_per_minute', tostring(wait), '0'} end
end

local streams, held_day, held_month = 0, 0.0, 0.0
local all = redis.call('HGETALL', holds)
for i = 1, #all, 2 do
  local c, d, m, s = string.match(all[i + 1], '^([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  if s == '1' then streams = streams + 1 end
  if d == day then held_day = held_day + tonumber(c) end
  if m == month then held_month = held_month + tonumber(c) end
end
if is_stream and max_streams and streams >= max_streams then
  return {'max_concurrent_streams', '1', tostring(streams)}
end
if budget_day then
  local spent = tonumber(redis.call('HGET', spend_day, 'cost_usd') or '0')
  if spent + held_day + cost > budget_day + epsilon then
    return {'budget_usd_per_day', (spent + cost > budget_day + epsilon) and ARGV[14] or '1',
            tostring(spent + held_day)}
  end
end
if budget_month then
  local spent = tonumber(redis.call('HGET', spend_month, 'cost_usd') or '0')
  if spent + held_month + cost > budget_month + epsilon then
    return {'budget_usd_per_month', (spent + cost > budget_month + epsilon) and ARGV[15] or '1',
            tostring(spent + held_month)}
  end
end

if new_rpm then redis.call('HSET', rates, 'rpm', string.format('%.6f', new_rpm)) end
if new_tpm then redis.call('HSET', rates, 'tpm', string.format('%.6f', new_tpm)) end
if new_rpm or new_tpm then redis.call('EXPIRE', rates, 600) end
redis.call('HSET', holds, id, ARGV[8] .. '|' .. day .. '|' .. month .. '|' .. ARGV[9])
redis.call('ZADD', expiry, expires, id)
return {}
"""

_SETTLE = """
local rates, holds, expiry, spend_day, spend_month = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, cost, tokens, tpm, bound = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
redis.call('HDEL', holds, id)
redis.call('ZREM', expiry, id)
for _, key in ipairs({spend_day, spend_month}) do
  redis.call('HINCRBYFLOAT', key, 'cost_usd', cost)
  redis.call('HINCRBY', key, 'tokens', tokens)
  redis.call('HINCRBY', key, 'requests', 1)
end
redis.call('EXPIRE', spend_day, ARGV[6])
redis.call('EXPIRE', spend_month, ARGV[7])
if tpm and tokens ~= bound then
  local tat = redis.call('HGET', rates, 'tpm')
  if tat then
    local shifted = tonumber(tat) + (tokens - bound) * 60.0 / tpm
    redis.call('HSET', rates, 'tpm', string.format('%.6f', shifted))
  end
end
return {}
"""


# One snapshot of a tenant's holds and spend. A script rather than MULTI: redis-py's
# cluster MULTI blocks the event loop (each queued command runs in a thread it joins).
_USAGE = """
return {redis.call('HGETALL', KEYS[2]), redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[1], '+inf'),
  redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[5])}
"""


def _arg(value: float | int | None) -> str:
    return "" if value is None else repr(value)


class RedisLedger:
    """`Ledger` in Redis. Open with `await RedisLedger.open(url)`."""

    def __init__(self, client: RedisClient, *, key_prefix: str, where: str, clock: Clock) -> None:
        """Use `open`."""
        self._redis = client
        self._prefix = key_prefix
        self._where = where
        self._clock = clock
        self._reserve = Script(_RESERVE)
        self._settle = Script(_SETTLE)
        self._usage = Script(_USAGE)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        key_prefix: str = "modelrouter:",
        clock: Clock = time.time,
        connect_timeout_s: float = 2.0,
        timeout_s: float = 5.0,
    ) -> RedisLedger:
        """Connect to `url` (one server, or a cluster: `redis+cluster://`) and check that
        Redis answers; `StoreError` when it does not. The client never retries: a retried
        reserve could take twice; a failure surfaces as StoreError instead."""
        try:
            client, where = open_client(
                url, connect_timeout_s=connect_timeout_s, timeout_s=timeout_s
            )
        except ValueError as exc:
            raise StoreError(f"redis ledger: redis_url: {exc}") from None
        ledger = cls(client, key_prefix=key_prefix, where=where, clock=clock)
        try:
            await ledger._call("connect", client.ping())
        except BaseException:
            await client.aclose()
            raise
        return ledger

    async def _call(self, what: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except REDIS_ERRORS as exc:
            raise StoreError(f"redis ledger {self._where}: {what} failed: {exc}") from exc

    def _keys(self, tenant: str, day: str, month: str) -> list[str]:
        base = f"{self._prefix}ledger:{{{tenant}}}"
        return [
            f"{base}:rates",
            f"{base}:holds",
            f"{base}:holds_exp",
            f"{base}:spend:d:{day}",
            f"{base}:spend:m:{month}",
        ]

    async def reserve(
        self,
        tenant: str,
        limits: Limits,
        *,
        tokens: int,
        cost_usd: float,
        stream: bool,
        lease_s: float,
    ) -> Reservation:
        now = self._clock()
        day, month = day_of(now), month_of(now)
        reservation_id = new_reservation_id()
        refused = await self._call(
            "reserve",
            self._reserve(
                self._redis,
                keys=self._keys(tenant, day, month),
                args=[
                    repr(now),
                    _arg(limits.requests_per_minute),
                    _arg(limits.tokens_per_minute),
                    _arg(limits.max_concurrent_streams),
                    _arg(limits.budget_usd_per_day),
                    _arg(limits.budget_usd_per_month),
                    str(tokens),
                    repr(float(cost_usd)),
                    "1" if stream else "0",
                    reservation_id,
                    repr(now + lease_s),
                    day,
                    month,
                    repr(seconds_to_next_day(now)),
                    repr(seconds_to_next_month(now)),
                ],
            ),
        )
        if refused:
            raise _refusal(tenant, limits, tokens, cost_usd, refused)
        return Reservation(
            tenant=tenant,
            id=reservation_id,
            tokens=tokens,
            cost_usd=cost_usd,
            stream=stream,
            day=day,
            month=month,
            tokens_per_minute=limits.tokens_per_minute,
        )

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        r = reservation
        await self._call(
            "settle",
            self._settle(
                self._redis,
                keys=self._keys(r.tenant, r.day, r.month),
                args=[
                    r.id,
                    repr(float(cost_usd)),
                    str(tokens),
                    _arg(r.tokens_per_minute),
                    str(r.tokens),
                    str(_DAY_TTL_S),
                    str(_MONTH_TTL_S),
                ],
            ),
        )

    async def usage(self, tenant: str) -> TenantUsage:
        now = self._clock()
        day, month = day_of(now), month_of(now)
        flat_holds, live, flat_day, flat_month = await self._call(
            "usage",
            self._usage(self._redis, keys=self._keys(tenant, day, month), args=[f"({now!r}"]),
        )
        spent_day, spent_month = _pairs(flat_day), _pairs(flat_month)
        live_ids = set(live)
        streams, held_day, held_month = 0, 0.0, 0.0
        for hold_id, value in _pairs(flat_holds).items():
            if hold_id not in live_ids:
                continue
            cost, hold_day, hold_month, stream = value.split("|")
            streams += stream == "1"
            held_day += float(cost) if hold_day == day else 0.0
            held_month += float(cost) if hold_month == month else 0.0
        return TenantUsage(
            tenant,
            _period(day, spent_day, held_day),
            _period(month, spent_month, held_month),
            streams,
        )

    async def aclose(self) -> None:
        await self._redis.aclose()


def _pairs(flat: list[str]) -> dict[str, str]:
    """HGETALL's reply inside a script: field, value, field, value..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _period(period: str, spent: dict[str, str], held: float) -> PeriodUsage:
    return PeriodUsage(
        period,
        float(spent.get("cost_usd", 0.0)),
        int(spent.get("tokens", 0)),
        int(spent.get("requests", 0)),
        held,
    )


def _refusal(
    tenant: str, limits: Limits, tokens: int, cost_usd: float, refused: list[str]
) -> QuotaExceeded:
    limit, wait, used = refused[0], float(refused[1]), float(refused[2])
    if limit == "requests_per_minute" and limits.requests_per_minute is not None:
        return rate_refusal(tenant, limit, limits.requests_per_minute, 1, wait)
    if limit == "tokens_per_minute" and limits.tokens_per_minute is not None:
        return rate_refusal(tenant, limit, limits.tokens_per_minute, tokens, wait)
    if limit == "max_concurrent_streams":
        return QuotaExceeded(
            tenant,
            limit,
            f"{int(used)} streams open, the limit is {limits.max_concurrent_streams}",
            wait,
        )
    budget = (
        limits.budget_usd_per_day if limit == "budget_usd_per_day" else limits.budget_usd_per_month
    )
    return budget_refusal(tenant, limit, budget or 0.0, used, cost_usd, wait)
