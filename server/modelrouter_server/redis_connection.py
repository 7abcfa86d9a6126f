"""Redis URLs and clients: one Redis server, or a Redis Cluster, chosen by the URL's scheme.

    redis://[user:password@]host:port/db      one server (redis-py's own forms, as before)
    rediss://...                              the same over TLS
    unix:///path/to/redis.sock?db=N           one server on a Unix socket
    redis+cluster://[user:password@]host:port a Redis Cluster: host[:port] is any one of its
    rediss+cluster://...                      nodes (the client discovers the others);
                                              database 0 only, as a cluster has no other

The scheme and not a separate setting, so that each URL (`context.redis_url`,
`ledger.redis_url`) says by itself what it points at. Both stores keep every key that one
script or MULTI touches under one hash tag, so the same code runs on either kind.

Neither client retries on its own (`Retry(NoBackoff(), 0)`): a write that timed out may
have been applied, and sending it again could apply it twice. Cluster redirections
(MOVED, ASK) are still followed: a redirected command was not executed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

RedisClient = aioredis.Redis | RedisCluster
"""Either client: the commands the stores use exist on both."""

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
"""What a Redis call raises when Redis (or the cluster's layout) fails it; redis-py's cluster
errors do not all derive from `RedisError`."""

_SINGLE_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SUFFIX = "+cluster"


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: `url` is what redis-py is given (the cluster marker removed)."""

    url: str
    cluster: bool


def parse_redis_url(url: str) -> RedisTarget:
    """The target `url` names; `ValueError` saying what is wrong (never echoing the URL,
    which may hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # read here so that a bad port is refused here
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme.endswith(_CLUSTER_SUFFIX):
        base = scheme.removesuffix(_CLUSTER_SUFFIX)
        if base not in ("redis", "rediss"):
            raise ValueError("a cluster URL starts with redis+cluster:// or rediss+cluster://")
        _check_cluster(parts)
        return RedisTarget(urlunsplit(parts._replace(scheme=base)), cluster=True)
    if scheme not in _SINGLE_SCHEMES:
        raise ValueError(
            "the scheme must be redis://, rediss://, unix:// (one server) or "
            "redis+cluster://, rediss+cluster:// (a Redis Cluster)"
        )
    if scheme != "unix" and not parts.hostname:
        raise ValueError("no host (redis://HOST:PORT/DB)")
    return RedisTarget(url, cluster=False)


def _check_cluster(parts: SplitResult) -> None:
    if not parts.hostname:
        raise ValueError("a cluster URL names one node: redis+cluster://HOST:PORT")
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0: leave the path out (or /0)")
    if "db" in parse_qs(parts.query):
        raise ValueError("a Redis Cluster has only database 0: no db= parameter")


def open_client(url: str, *, connect_timeout_s: float, timeout_s: float) -> tuple[RedisClient, str]:
    """A client for `url` (not yet connected) and where it points, for messages: host:port
    and database only, as the URL may hold a password."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.cluster:
        node = urlsplit(target.url)
        return RedisCluster.from_url(
            target.url, **options
        ), f"cluster {node.hostname}:{node.port or 6379}"
    single = aioredis.Redis.from_url(target.url, **options)
    kwargs = single.connection_pool.connection_kwargs
    where = f"{kwargs.get('host', 'unix')}:{kwargs.get('port', '')}/{kwargs.get('db', 0)}"
    return single, where


class Script:
    """A Lua script run by its SHA1, sent whole only to a node that does not have it yet.

    redis-py's own script objects load a missing script with SCRIPT LOAD on every primary
    of a cluster, which fails as long as any one of them is down, even for keys on a node
    that is up. Sending the script with EVAL instead loads it on the one node that runs it;
    retrying after NOSCRIPT is safe, as a refused EVALSHA ran nothing.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    async def __call__(
        self, client: RedisClient, *, keys: Sequence[str], args: Sequence[str]
    ) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.text, len(keys), *keys, *args)
