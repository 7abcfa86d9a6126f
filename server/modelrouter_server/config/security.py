"""The configuration of who may call: API keys, tenants and their limits, TLS, the ledger.

Keys never appear in the file, only their sha256 (`modelrouter keys create` prints both
once). Tenant names become metric labels and ledger keys, so they are restricted to a short
safe alphabet; the set of labels is exactly the configured tenants.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelrouter_server.domain import Task
from modelrouter_server.redis_connection import parse_redis_url

TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class AuthMode(enum.Enum):
    API_KEY = "api_key"
    NONE = "none"


class AuthConfig(_Strict):
    mode: AuthMode = AuthMode.NONE
    """`api_key`: every RPC but health needs a configured tenant's key. `none`: every caller
    is `default_tenant`; allowed only on a loopback address unless `allow_unauthenticated`."""
    allow_unauthenticated: bool = False
    """Serve `mode = "none"` on a non-loopback address anyway (logged as a warning)."""
    default_tenant: str = "default"
    """The owner of conversations created before auth was on, and of every call when
    `mode = "none"`."""

    @field_validator("default_tenant")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a tenant name (letters, digits, _ . -; <= 64)")
        return value


class TenantConfig(_Strict):
    """One caller (a team, an agent fleet): its keys and optional limits."""

    api_key_sha256: tuple[str, ...] = ()
    """The hex sha256 of each accepted key; several allow rotation. One string is accepted."""
    allowed_models: tuple[str, ...] = ()
    """Model ids or aliases this tenant may use; empty: every model."""
    allowed_tasks: tuple[Task, ...] = ()
    """Tasks this tenant may request; empty: every task."""
    requests_per_minute: Annotated[int, Field(gt=0)] | None = None
    tokens_per_minute: Annotated[int, Field(gt=0)] | None = None
    """Input + output tokens; reserved at the request's upper bound, settled with real usage."""
    max_concurrent_streams: Annotated[int, Field(gt=0)] | None = None
    max_concurrent_rpcs: Annotated[int, Field(gt=0)] | None = None
    """RPCs of this tenant in flight at once on one server (every RPC, streams included);
    kept by admission, not the ledger."""
    budget_usd_per_day: Annotated[float, Field(gt=0)] | None = None
    """UTC calendar day."""
    budget_usd_per_month: Annotated[float, Field(gt=0)] | None = None
    """UTC calendar month."""

    @field_validator("api_key_sha256", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("api_key_sha256")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, digest in enumerate(value):
            if not _SHA256_HEX.fullmatch(digest):
                raise ValueError(
                    f"[{i}] is not a lowercase hex sha256 (64 characters); "
                    "`modelrouter keys create` prints one"
                )
        return value

    @property
    def has_limits(self) -> bool:
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.max_concurrent_streams,
                self.budget_usd_per_day,
                self.budget_usd_per_month,
            )
        )


class TlsConfig(_Strict):
    cert_file: str
    key_file: str
    client_ca_file: str = ""
    """Set: mTLS, a client without a certificate signed by this CA is refused at the handshake."""


class LedgerKind(enum.Enum):
    AUTO = "auto"
    """Redis when `context.store = "redis"` (shared by replicas), else SQLite."""
    SQLITE = "sqlite"
    REDIS = "redis"


class LedgerConfig(_Strict):
    """Where request counts, concurrent streams and spend are kept."""

    store: LedgerKind = LedgerKind.AUTO
    sqlite_path: str = "modelrouter-ledger.db"
    """Shared by every worker process on this host; spend survives a restart."""
    redis_url: str = ""
    """Empty: `context.redis_url`. A Redis Cluster: `redis+cluster://HOST:PORT`."""
    stream_lease_s: Annotated[float, Field(gt=0)] = 3600.0
    """A stream or budget hold left by a crashed process stops counting after this long
    (or the request's deadline, whichever is later)."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value:
            parse_redis_url(value)
        return value


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (`localhost`, 127.0.0.0/8, ::1)."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
