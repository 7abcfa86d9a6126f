"""Configuration: one TOML file, parsed strictly.

An unknown key or a bad value is an error that names its path (`models.gpt-4o-mini.pricing`),
and cross-references (aliases, routes, providers, the summarizer) are checked at load time,
so a typo fails start-up instead of the first request that touches it.
"""

from modelrouter_server.config.exposure import check_exposure
from modelrouter_server.config.loader import ConfigError, default_config_path, load_config
from modelrouter_server.config.schema import (
    Capabilities,
    ContextConfig,
    EmulatorMode,
    LimitsConfig,
    LogFormat,
    ModelConfig,
    Pricing,
    ProviderConfig,
    ProviderKind,
    ResilienceConfig,
    RouterConfig,
    RoutingConfig,
    ServerConfig,
)
from modelrouter_server.config.security import (
    AuthConfig,
    AuthMode,
    LedgerConfig,
    LedgerKind,
    TenantConfig,
    TlsConfig,
    is_loopback,
)

__all__ = [
    "AuthConfig",
    "AuthMode",
    "Capabilities",
    "ConfigError",
    "ContextConfig",
    "EmulatorMode",
    "LedgerConfig",
    "LedgerKind",
    "LimitsConfig",
    "LogFormat",
    "ModelConfig",
    "Pricing",
    "ProviderConfig",
    "ProviderKind",
    "ResilienceConfig",
    "RouterConfig",
    "RoutingConfig",
    "ServerConfig",
    "TenantConfig",
    "TlsConfig",
    "check_exposure",
    "default_config_path",
    "is_loopback",
    "load_config",
]
