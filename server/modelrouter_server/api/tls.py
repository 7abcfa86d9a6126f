"""Server credentials from `[server.tls]`: TLS, and mTLS when a client CA is configured."""

from __future__ import annotations

from pathlib import Path

import grpc
from modelrouter_server.config.loader import ConfigError
from modelrouter_server.config.security import TlsConfig


def _read(field: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"server.tls.{field}: cannot read {path}: {exc.strerror}") from exc


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Credentials for `add_secure_port`. With `client_ca_file` a client must present a
    certificate signed by that CA, or the handshake fails before any RPC is seen."""
    key = _read("key_file", tls.key_file)
    chain = _read("cert_file", tls.cert_file)
    client_ca = _read("client_ca_file", tls.client_ca_file) if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
