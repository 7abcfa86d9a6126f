"""Where a provider's SDK client connects, and the HTTP settings it is built with."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import httpx2

from modelrouter_server.providers.aiohttp_transport import AiohttpTransport
from modelrouter_server.providers.pool import PoolObserver, PoolWatch

C = TypeVar("C")


def proxied(base_url: str | None) -> bool:
    """Whether the environment names a proxy that calls to `base_url` go through (None:
    the SDK's default endpoint, an https URL whose host is not known here). `NO_PROXY`
    alone, common where no proxy is used at all, names none; a host it lists bypasses
    the proxy."""
    url = urlsplit("https://" if base_url is None else base_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return url.hostname is None or not urllib.request.proxy_bypass(url.hostname)


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything an SDK client is built from. The key is kept out of `repr`."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    """None: the SDK's own default (which honours its base-URL environment variable)."""
    timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    max_connections: int = 1000
    """The pool's size (the factory passes the provider's, by default the admission limit)."""
    pool_timeout_s: float = 10.0
    """The longest a call waits for a free connection of the pool."""
    pool_observer: PoolObserver | None = field(default=None, repr=False, compare=False)
    http1: bool = True
    http2: bool = False
    """With `http1` too: HTTP/2 when TLS negotiates it (ALPN). Alone: prior knowledge."""

    def pool_watch(self, provider: str) -> PoolWatch:
        """What times and reports the pool waits of `provider`'s calls."""
        return PoolWatch(provider, self.max_connections, self.pool_timeout_s, self.pool_observer)

    def sdk_client(
        self,
        client_class: Callable[..., C],
        http_class: Callable[..., httpx2.AsyncClient],
        watch: PoolWatch,
    ) -> tuple[C, httpx2.AsyncClient]:
        """An SDK's client (`client_class`) over its HTTP client (`http_class`, as
        `http_client` builds it), and that HTTP client, which `SdkEndpoint` sends through."""
        http = self.http_client(http_class, watch)
        client = client_class(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            # The router has the one retry loop; a second one here would multiply attempts.
            max_retries=0,
            http_client=http,
        )
        return client, http

    def http_client(
        self, sdk_client: Callable[..., httpx2.AsyncClient], watch: PoolWatch
    ) -> httpx2.AsyncClient:
        """The HTTP client of an SDK, built by the SDK's own default class (`sdk_client`).

        HTTP/1.1 goes over aiohttp (`AiohttpTransport`: a third of the CPU per call). HTTP/2
        and a provider behind an environment-configured proxy keep httpx's own transport,
        with the SDK's TCP keep-alive settings: aiohttp speaks no HTTP/2, and the proxy
        variables are honoured by the SDK's client only.
        """
        if self.http2 or proxied(self.base_url):
            return sdk_client(
                timeout=self.timeout,
                limits=self.limits,
                http1=self.http1,
                http2=self.http2,
                event_hooks={"request": [watch.on_request]},
            )
        transport = AiohttpTransport(
            max_connections=self.max_connections,
            keepalive_expiry_s=self.limits.keepalive_expiry,
            watch=watch,
            # httpx's trust store, so TLS verifies against what the SDKs' own clients use.
            ssl_context=httpx2.create_ssl_context() if self._tls else None,
        )
        return sdk_client(timeout=self.timeout, transport=transport)

    @property
    def _tls(self) -> bool:
        # No base URL: the SDK's default, the provider's https API.
        return self.base_url is None or self.base_url.lower().startswith("https:")

    @property
    def timeout(self) -> httpx2.Timeout:
        """The client-wide timeout: `timeout_s` per read/write, shorter connect and pool waits."""
        return httpx2.Timeout(
            self.timeout_s, connect=self.connect_timeout_s, pool=self.pool_timeout_s
        )

    @property
    def limits(self) -> httpx2.Limits:
        # Keep every pooled connection alive: a router re-uses them for the next call.
        return httpx2.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_connections,
        )

    def call_timeout(self, remaining_s: float | None) -> httpx2.Timeout:
        """The timeout of one call that must end within `remaining_s` (None: no deadline).

        Always explicit, because anthropic's `create` refuses large non-streaming calls
        client-side when it is left to pick a timeout itself.
        """
        if remaining_s is None:
            return self.timeout
        # A deadline already past still gets a tiny budget, so the call fails as a timeout.
        remaining_s = max(remaining_s, 0.001)
        return httpx2.Timeout(
            min(self.timeout_s, remaining_s),
            connect=min(self.connect_timeout_s, remaining_s),
            pool=min(self.pool_timeout_s, remaining_s),
        )
