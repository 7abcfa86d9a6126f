"""API keys: making them, and finding the tenant a presented key belongs to.

Only the sha256 of a key is configured. A presented key is hashed and compared with every
configured digest with `hmac.compare_digest`, all of them every time, so neither the
comparison nor the loop's length tells a caller how close a guess came or which tenant
exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from modelrouter_server.config.security import TenantConfig

KEY_PREFIX = "mr_"
"""Marks a string as a modelrouter key (secret scanners and people recognise it)."""


def new_key() -> str:
    """A new random key: 256 bits from the OS's CSPRNG."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The hex sha256 that `api_key_sha256` holds for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Configured key digests, by tenant."""

    def __init__(self, tenants: Mapping[str, TenantConfig]) -> None:
        self._digests: tuple[tuple[bytes, str], ...] = tuple(
            (bytes.fromhex(digest), name)
            for name, tenant in tenants.items()
            for digest in tenant.api_key_sha256
        )

    def tenant_for(self, key: str) -> str | None:
        """The tenant whose key `key` is, or None."""
        presented = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for digest, name in self._digests:
            if hmac.compare_digest(presented, digest):
                found = name
        return found
