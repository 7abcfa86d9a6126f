"""Building every configured provider once, at start-up: real, or served by the emulator.

A provider is emulated when `emulator.mode` is `always`, or when it is `auto` and the
provider has neither a key nor a base URL to go to (its config `base_url`, or the SDK's own
`ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL`). An OpenAI-compatible server is only emulated under
`always`: it is a local server by definition, and the emulator does not stand in for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from modelrouter_server.config.schema import (
    EmulatorMode,
    ProviderConfig,
    ProviderKind,
    RouterConfig,
)
from modelrouter_server.providers.anthropic_provider import AnthropicProvider
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.connection import Connection
from modelrouter_server.providers.openai_provider import OpenAIProvider
from modelrouter_server.providers.pool import PoolObserver

_SDK_BASE_URL_VARIABLE: Mapping[ProviderKind, str] = {
    ProviderKind.ANTHROPIC: "ANTHROPIC_BASE_URL",
    ProviderKind.OPENAI: "OPENAI_BASE_URL",
    ProviderKind.OPENAI_COMPATIBLE: "OPENAI_BASE_URL",
}
_EMULATOR_KEY = "emulator"
# Local OpenAI-compatible servers ignore the key, but the SDK refuses to run without one.
_PLACEHOLDER_KEY = "unused"


class ProviderSetupError(Exception):
    """A provider cannot be built from the configuration and environment given."""


@dataclass(frozen=True, slots=True)
class ProviderTarget:
    """Where one provider sends its calls: for the start-up log line. Holds no key."""

    name: str
    kind: ProviderKind
    emulated: bool
    base_url: str | None
    """None: the SDK's default endpoint."""
    key_source: str
    """The environment variable the key came from, or why there is none."""

    def describe(self) -> str:
        """One line such as `anthropic (anthropic): emulated at http://127.0.0.1:8123`."""
        where = self.base_url or "the SDK's default endpoint"
        if self.emulated:
            return f"{self.name} ({self.kind.value}): emulated at {where}"
        return f"{self.name} ({self.kind.value}): {where}, key from {self.key_source}"


def needs_emulator(config: RouterConfig, *, env: Mapping[str, str]) -> bool:
    """Whether any provider will be emulated, i.e. whether to start the emulator."""
    return any(
        _is_emulated(provider, config.emulator.mode, env) for provider in config.providers.values()
    )


def resolve_targets(
    config: RouterConfig, *, env: Mapping[str, str], emulator_base_url: str | None
) -> dict[str, ProviderTarget]:
    """Where each provider will point, without building anything."""
    return {
        name: _resolve(name, provider, config, env, emulator_base_url)[0]
        for name, provider in config.providers.items()
    }


def build_providers(
    config: RouterConfig,
    *,
    env: Mapping[str, str],
    emulator_base_url: str | None,
    pool_observer: PoolObserver | None = None,
) -> dict[str, Provider]:
    """One provider per `[providers.*]` entry, each with its SDK client built once.

    `env` is the process environment (passed in so tests need not touch `os.environ`);
    `emulator_base_url` is where the running emulator listens, None when none runs.
    Raises `ProviderSetupError` when a provider has nowhere to go. `pool_observer` hears
    of every call that found no free pooled connection in time.
    """
    providers: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        target, connection = _resolve(name, provider, config, env, emulator_base_url)
        connection = dataclasses.replace(connection, pool_observer=pool_observer)
        if provider.kind is ProviderKind.ANTHROPIC:
            providers[name] = AnthropicProvider(name, connection, emulated=target.emulated)
        else:
            own_models = {
                model_id: model
                for model_id, model in config.models.items()
                if model.provider == name
            }
            providers[name] = OpenAIProvider(
                name, connection, models=own_models, kind=provider.kind, emulated=target.emulated
            )
    return providers


def _is_emulated(provider: ProviderConfig, mode: EmulatorMode, env: Mapping[str, str]) -> bool:
    if mode is EmulatorMode.ALWAYS:
        return True
    if mode is EmulatorMode.OFF or provider.kind is ProviderKind.OPENAI_COMPATIBLE:
        return False
    return not _api_key(provider, env) and _base_url(provider, env) is None


def _resolve(
    name: str,
    provider: ProviderConfig,
    config: RouterConfig,
    env: Mapping[str, str],
    emulator_base_url: str | None,
) -> tuple[ProviderTarget, Connection]:
    if _is_emulated(provider, config.emulator.mode, env):
        if emulator_base_url is None:
            raise ProviderSetupError(f"providers.{name}: emulated, but no emulator is running")
        emulated_url = emulator_base_url.rstrip("/")
        if provider.kind is not ProviderKind.ANTHROPIC:
            emulated_url += "/v1"
        target = ProviderTarget(name, provider.kind, True, emulated_url, "none (emulated)")
        # The emulator speaks HTTP/1.1 only, whatever the provider's `http2` says.
        return target, _connection(provider, config, _EMULATOR_KEY, emulated_url, http2=False)
    base_url = _base_url(provider, env)
    key = _api_key(provider, env)
    if key:
        key_source = provider.api_key_env
    elif base_url is not None:
        key, key_source = _PLACEHOLDER_KEY, "none (placeholder)"
    else:
        variable = provider.api_key_env or "api_key_env"
        raise ProviderSetupError(
            f"providers.{name}: {variable} is not set and there is no base_url "
            f"(emulator.mode is {config.emulator.mode.value})"
        )
    target = ProviderTarget(name, provider.kind, False, base_url, key_source)
    return target, _connection(provider, config, key, base_url, http2=provider.http2)


def _api_key(provider: ProviderConfig, env: Mapping[str, str]) -> str:
    return env.get(provider.api_key_env, "").strip() if provider.api_key_env else ""


def _base_url(provider: ProviderConfig, env: Mapping[str, str]) -> str | None:
    # Read from `env` rather than left to the SDK, so the emulation decision and the
    # client agree on the one environment they were given.
    return provider.base_url or env.get(_SDK_BASE_URL_VARIABLE[provider.kind]) or None


def _connection(
    provider: ProviderConfig,
    config: RouterConfig,
    api_key: str,
    base_url: str | None,
    *,
    http2: bool,
) -> Connection:
    # No base URL: the SDK's default endpoint, which is https.
    plaintext = base_url is not None and base_url.lower().startswith("http:")
    return Connection(
        api_key=api_key,
        base_url=base_url,
        timeout_s=provider.timeout_s,
        connect_timeout_s=provider.connect_timeout_s,
        max_connections=config.pool_size(provider),
        pool_timeout_s=provider.pool_timeout_s,
        # Over plaintext there is no ALPN to agree on HTTP/2: asked for, it is h2c only.
        http1=not (http2 and plaintext),
        http2=http2,
    )
