"""HTTP/1.1 to a provider over aiohttp, behind the httpx transport interface the SDKs take.

The SDKs build every call with httpx, whose HTTP/1.1 stack (httpcore and h11) is pure
Python. Measured against the bench's stand-in upstream, the same SDK calls cost a third
less CPU each on aiohttp (its C HTTP parser), and a relayed 200-token stream less than
half. The SDKs ship this swap themselves (`DefaultAioHttpClient`); this module is our own
version of it because the router needs what theirs leaves out: the pool wait timed and
bounded by `pool_timeout_s` (and told apart from a connect timeout), TCP keep-alive probes,
no cookie jar shared between callers, and transport errors raised as the httpx classes the
SDKs and `providers.sse` map.

aiohttp's pool is a dict of idle connections and a queue of waiters, so unlike httpcore's
it needs no sharding however large it is.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import functools
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx2
from multidict import istr
from yarl import URL

from modelrouter_server.providers.pool import PoolWatch
from modelrouter_server.stream_steps import overlappable_read

_HTTP11 = {"http_version": b"HTTP/1.1"}

READ_BUFFER_BYTES = 16 * 1024
"""The most a response reads from its socket at once, buffers unread, and hands out per
read. aiohttp reads a socket as data arrives: it stops only once a response's unread body
passes twice its buffer, and each socket read takes up to 256 KiB, so with a fast upstream
a stream whose gRPC client stopped reading holds that much in the router, then about as
much again as parsed events. 200 such clients of 64k-token streams
(`python -m bench.load.overload --only backpressure`): at aiohttp's defaults the router
grew by 650 MiB; with a 16 KiB buffer alone by 128 MiB; with socket reads and parsed
batches bounded too, by 65 MiB (40 MiB for clients without BDP)."""


_KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5))


# Headers whose values differ from call to call (the body's length; the SDKs' timeout
# headers, which say the time left): kept in `_shared_header` they would only push out
# the values that every call sends.
_PER_CALL_HEADERS = frozenset(
    (b"content-length", b"x-stainless-read-timeout", b"x-stainless-timeout")
)


def _aiohttp_headers(headers: httpx2.Headers) -> list[tuple[istr, str]]:
    encoding = headers.encoding
    return [
        _decoded(name, value, encoding)
        if name.lower() in _PER_CALL_HEADERS
        else _shared_header(name, value, encoding)
        for name, value in headers.raw
    ]


def _decoded(name: bytes, value: bytes, encoding: str) -> tuple[istr, str]:
    return istr(name.lower().decode(encoding)), value.decode(encoding)


_shared_header = functools.lru_cache(maxsize=512)(_decoded)
"""A request header as aiohttp takes it, one copy for every call that sends it. An SDK
sends the same dozen headers on every call, and aiohttp keeps a call's headers for as
long as its response is open. Decoded anew for each call, they were about 4 KiB of every
open stream: the strings, and the case-folded name aiohttp derives from each (an `istr`
carries its own, so the shared one serves every call)."""


def _keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A socket with TCP keep-alive as the Anthropic SDK's default client sets it (probe an
    idle connection after 60 s, every 60 s, 5 times), so a dead upstream is noticed."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE:
        option = getattr(socket, name, None)  # not every platform has all three
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return sock


class _CallTrace:
    """What aiohttp's trace events tell of one call: its time in the pool's queue for a
    connection, bounded by `pool_timeout_s`, and whether its request has gone out.

    aiohttp's own `connect` timeout would cover the wait and the connect together; the
    router keeps them apart (`pool_timeout_s`, `connect_timeout_s`), as httpx does, so the
    queue gets its own deadline on the call's `asyncio.timeout`. A connection that fails
    once the request is out is a read error, not a connect error, as with httpx: the
    provider may have taken the request.
    """

    __slots__ = ("deadline", "limit_s", "queued", "scope", "sent", "since", "waited_s")

    scope: asyncio.Timeout
    """The call's timeout scope (set by the transport as it opens it)."""

    def __init__(self, limit_s: float | None) -> None:
        self.limit_s = limit_s
        self.deadline: float | None = None
        self.since = 0.0
        self.waited_s = 0.0
        self.queued = False
        self.sent = False

    def start(self) -> None:
        self.queued = True
        self.since = time.perf_counter()
        if self.limit_s is not None:
            if self.deadline is None:  # a waiter that lost a race queues again, same deadline
                self.deadline = asyncio.get_running_loop().time() + self.limit_s
            self.scope.reschedule(self.deadline)

    def end(self) -> None:
        self.queued = False
        self.waited_s += time.perf_counter() - self.since
        self.scope.reschedule(None)


async def _queued_start(_: object, context: SimpleNamespace, __: object) -> None:
    context.trace_request_ctx.start()


async def _queued_end(_: object, context: SimpleNamespace, __: object) -> None:
    context.trace_request_ctx.end()


async def _headers_sent(_: object, context: SimpleNamespace, __: object) -> None:
    context.trace_request_ctx.sent = True


def _call_tracing() -> aiohttp.TraceConfig:
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(_queued_start)
    tracing.on_connection_queued_end.append(_queued_end)
    tracing.on_request_headers_sent.append(_headers_sent)
    tracing.freeze()
    return tracing


@contextmanager
def _as_httpx_errors(request: httpx2.Request, trace: _CallTrace | None) -> Iterator[None]:
    """aiohttp's failures as the httpx exceptions the SDKs (and `providers.sse`) expect.
    `trace`: the call's, while its response has not begun (None: reading the body)."""
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx2.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx2.ReadTimeout(str(exc) or "read timed out", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx2.TimeoutException(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx2.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed status line or header
        raise httpx2.RemoteProtocolError(exc.message, request=request) from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        error = httpx2.ConnectError if trace is not None and not trace.sent else httpx2.ReadError
        raise error(str(exc) or type(exc).__name__, request=request) from exc


def _bound_tls_reads() -> None:
    """asyncio gives every TLS connection a read buffer of `SSLProtocol.max_size`, 256 KiB,
    zero-filled at once, for as long as the connection is open: a stream held open to an
    https provider cost 313 KiB against 22 KiB over plaintext (200 streams through this
    transport). The router reads at most READ_BUFFER_BYTES at a time anyway. The size is
    a class attribute, so this bounds every asyncio TLS connection of the process (the
    Redis client's too), each to reads of at most that many bytes."""
    asyncio.sslproto.SSLProtocol.max_size = READ_BUFFER_BYTES


def _bound_socket_reads(response: aiohttp.ClientResponse) -> None:
    """Each read of the response's socket takes at most READ_BUFFER_BYTES. asyncio's
    selector transport reads `max_size` bytes (256 KiB) at a time and has no public setter;
    a transport without the attribute (TLS, another loop) is left as it is: a TLS
    connection's reads are bounded by `_bound_tls_reads`."""
    connection = response.connection
    transport = connection.transport if connection is not None else None
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = READ_BUFFER_BYTES  # type: ignore[attr-defined]


async def _sent_body(request: httpx2.Request) -> bytes | None:
    """The request's body, read from its stream rather than `request.content`: a body sent
    once (SdkEndpoint's) is not kept on the request, which its response holds while the
    answer streams."""
    stream = request.stream
    if not isinstance(stream, httpx2.AsyncByteStream):
        raise TypeError("an async transport needs an async request body")
    return b"".join([part async for part in stream]) or None


class _Body(httpx2.AsyncByteStream):
    """A response body, read as the bytes arrive. Closing it before its end closes the
    connection, which is how an upstream learns that the call was cancelled."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        with _as_httpx_errors(self._request, None):
            while True:
                # The wait holds no lock and arms no timer: a stream's step suspended
                # here may overlap the write of the text before it (stream_steps).
                with overlappable_read():
                    chunk = await content.read(READ_BUFFER_BYTES)
                if not chunk:
                    return
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()  # back to the pool
        else:
            self._response.close()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An HTTP/1.1 pool of at most `max_connections` connections over aiohttp."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry_s: float | None,
        watch: PoolWatch,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry_s = keepalive_expiry_s
        self._watch = watch
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Built on first use: aiohttp binds its connector to the running loop.
        if self._ssl is not None:
            _bound_tls_reads()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry_s,
            ssl=self._ssl if self._ssl is not None else True,
            socket_factory=_keepalive_socket,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # One router serves many callers: nothing an upstream sets may follow another.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes, by the response's headers
            trust_env=False,  # a proxied provider keeps the SDK's own client (connection.py)
            trace_configs=[_call_tracing()],
        )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session or self._open()
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        connect_s, pool_s = timeouts.get("connect"), timeouts.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            # Only a backstop: the queue has its own deadline (_CallTrace) and the connect
            # its `sock_connect`; this also bounds a DNS look-up.
            connect=None if connect_s is None or pool_s is None else connect_s + pool_s,
            sock_connect=connect_s,
            sock_read=timeouts.get("read"),
        )
        body = await _sent_body(request)
        url = request.url
        if url.userinfo:
            # httpx has already turned URL credentials into headers; aiohttp refuses both.
            url = url.copy_with(username=None, password=None)
        wait = _CallTrace(pool_s)
        try:
            async with asyncio.timeout(None) as wait.scope:
                with _as_httpx_errors(request, wait):
                    response = await session.request(
                        request.method,
                        URL(str(url), encoded=True),
                        headers=_aiohttp_headers(request.headers),
                        data=body,
                        allow_redirects=False,
                        timeout=timeout,
                        trace_request_ctx=wait,
                        read_bufsize=READ_BUFFER_BYTES,
                        server_hostname=request.extensions.get("sni_hostname"),
                    )
        except TimeoutError as exc:
            if not wait.queued:
                raise
            # Still queued when the deadline fired: the pool had no connection to give.
            raise httpx2.PoolTimeout(
                f"no free connection within {pool_s}s", request=request
            ) from exc
        finally:
            if not wait.queued:
                self._watch.waited(wait.waited_s)
        _bound_socket_reads(response)
        extensions = dict(_HTTP11)
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
