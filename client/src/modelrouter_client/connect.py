"""How a client reaches the router: plaintext or TLS (optionally with a client certificate,
for mTLS), and the API key sent with every call.

The key travels as `authorization: Bearer <key>` metadata, added by a channel interceptor,
so every call of the client carries it without each method passing it along. Without TLS it
is sent only to a loopback address (as the Go and TypeScript clients do): a key never
crosses a network in plaintext.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc

# The stubs make the interceptor bases generic; at run time they are plain classes.
if TYPE_CHECKING:
    _AioUnaryBase = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _AioStreamBase = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _SyncUnaryBase = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _SyncStreamBase = grpc.UnaryStreamClientInterceptor[Any, Any]
else:
    _AioUnaryBase = grpc.aio.UnaryUnaryClientInterceptor
    _AioStreamBase = grpc.aio.UnaryStreamClientInterceptor
    _SyncUnaryBase = grpc.UnaryUnaryClientInterceptor
    _SyncStreamBase = grpc.UnaryStreamClientInterceptor


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS channel. No `ca_file`: the system's trusted roots. `cert_file`
    and `key_file` together: a client certificate, for a router that requires mTLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )


def _read(path: str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


class KeyWithoutTls(ValueError):
    """An API key would go to a non-loopback address in plaintext."""


def is_loopback_target(target: str) -> bool:
    """True when `target` (`host:port`, `[v6]:port`, `dns:///host:port`, `unix:path`)
    names this machine."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        target = target.removeprefix(scheme)
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 or "]" in target else target
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_key_transport(target: str, tls: TlsFiles | None, api_key: str | None) -> None:
    if api_key and tls is None and not is_loopback_target(target):
        raise KeyWithoutTls(
            f"an API key to {target} needs tls=TlsFiles(...): refusing to send it in plaintext"
        )


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    """The metadata that carries `api_key`."""
    return (("authorization", f"Bearer {api_key}"),)


def _with_key(details: grpc.aio.ClientCallDetails, api_key: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if "authorization" not in metadata:
        metadata.add("authorization", f"Bearer {api_key}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


class _AioKeyUnary(_AioUnaryBase):
    def __init__(self, api_key: str) -> None:
        self._key = api_key

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], grpc.aio.UnaryUnaryCall[Any, Any]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        # grpc.aio's continuation is a coroutine function; the stubs say otherwise.
        return await cast(
            Awaitable[Any], continuation(_with_key(client_call_details, self._key), request)
        )


class _AioKeyStream(_AioStreamBase):
    def __init__(self, api_key: str) -> None:
        self._key = api_key

    async def intercept_unary_stream(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, Any], grpc.aio.UnaryStreamCall[Any, Any]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> AsyncIterable[Any] | grpc.aio.UnaryStreamCall[Any, Any]:
        call = continuation(_with_key(client_call_details, self._key), request)
        return cast(grpc.aio.UnaryStreamCall[Any, Any], await cast(Awaitable[Any], call))


def aio_channel(
    target: str, *, tls: TlsFiles | None = None, api_key: str | None = None
) -> grpc.aio.Channel:
    """A grpc.aio channel to `target`: TLS when `tls` is given, the key on every call
    (`KeyWithoutTls` for a key in plaintext to a non-loopback address)."""
    _check_key_transport(target, tls, api_key)
    interceptors: list[Any] | None = (
        [_AioKeyUnary(api_key), _AioKeyStream(api_key)] if api_key else None
    )
    if tls is None:
        return grpc.aio.insecure_channel(target, interceptors=interceptors)
    return grpc.aio.secure_channel(target, tls.credentials(), interceptors=interceptors)


class _SyncKey(_SyncUnaryBase, _SyncStreamBase):
    def __init__(self, api_key: str) -> None:
        self._key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), *auth_metadata(self._key)]
        return _SyncDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request)


class _SyncDetails(grpc.ClientCallDetails):
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def sync_channel(
    target: str, *, tls: TlsFiles | None = None, api_key: str | None = None
) -> grpc.Channel:
    """A blocking channel to `target`: TLS when `tls` is given, the key on every call
    (`KeyWithoutTls` for a key in plaintext to a non-loopback address)."""
    _check_key_transport(target, tls, api_key)
    channel = (
        grpc.insecure_channel(target)
        if tls is None
        else grpc.secure_channel(target, tls.credentials())
    )
    return grpc.intercept_channel(channel, _SyncKey(api_key)) if api_key else channel
