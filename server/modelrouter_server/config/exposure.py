"""The start-up check that an unauthenticated router is not reachable from the network."""

from __future__ import annotations

from modelrouter_server.config.loader import ConfigError
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.config.security import AuthMode, is_loopback


def check_exposure(config: RouterConfig, host: str) -> str | None:
    """`ConfigError` (one line) when `host` is not loopback and nobody is authenticated;
    a warning to log when `auth.allow_unauthenticated` opts out; None when all is well."""
    if config.auth.mode is not AuthMode.NONE or is_loopback(host):
        return None
    if not config.auth.allow_unauthenticated:
        raise ConfigError(
            f'refusing to serve {host} with auth.mode = "none": anyone who can reach it may '
            'call every model; set auth.mode = "api_key" or auth.allow_unauthenticated = true'
        )
    return f'serving {host} with auth.mode = "none": every caller is unauthenticated'
