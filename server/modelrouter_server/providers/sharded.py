"""A provider's HTTP/1.1 pool split into shards of a few dozen connections.

httpcore re-examines its whole pool (every connection, every queued request) each time
a request starts and each time a response closes. At a pool of 1,000 connections (the
default: one per admitted RPC) that scan took a sixth of the router's CPU in a burst of
1,000 streams. Several small pools, each call sent to the one with the fewest calls in
flight, keep every scan short while the provider still gets its `max_connections`.
HTTP/2 pools are not split: a few multiplexed connections carry every call.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import AsyncIterator, Sequence

import httpx2

SHARD_CONNECTIONS = 64
"""Connections per shard: a scan of this many costs little, and 1,000 calls need 16."""


def keepalive_socket_options() -> list[tuple[int, int, int]]:
    """TCP keep-alive as the Anthropic SDK's default client sets it (probe an idle
    connection after 60 s, every 60 s, 5 times), so a dead upstream is noticed."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5)):
        number = getattr(socket, name, None)
        if number is not None:
            options.append((socket.IPPROTO_TCP, number, value))
    return options


def proxies_configured() -> bool:
    """Whether the environment names an HTTP proxy: the SDKs' own clients honour it, a
    transport built here would not, so such a provider keeps the SDK's client."""
    return bool(urllib.request.getproxies())


def shard_sizes(max_connections: int, per_shard: int) -> list[int]:
    """`max_connections` split into shards of at most `per_shard`, as even as can be."""
    count = -(-max_connections // per_shard)
    base, extra = divmod(max_connections, count)
    return [base + 1 if i < extra else base for i in range(count)]


class ShardedTransport(httpx2.AsyncBaseTransport):
    """Sends each request to the shard with the fewest responses open."""

    def __init__(self, shards: Sequence[httpx2.AsyncBaseTransport]) -> None:
        self._shards = tuple(shards)
        self._open = [0] * len(self._shards)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        index = self._open.index(min(self._open))
        self._open[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._open[index] -= 1
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)  # an async transport's
        response.stream = _CountedStream(response.stream, self._open, index)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _CountedStream(httpx2.AsyncByteStream):
    """A response body that gives its shard's count back once, when it is closed
    (httpx closes every response: read to the end, or on an error or a cancel)."""

    def __init__(self, stream: httpx2.AsyncByteStream, counts: list[int], index: int) -> None:
        self._stream = stream
        self._counts: list[int] | None = counts
        self._index = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        counts, self._counts = self._counts, None
        if counts is not None:
            counts[self._index] -= 1
        await self._stream.aclose()
