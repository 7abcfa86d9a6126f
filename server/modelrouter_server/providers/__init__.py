"""Providers: one module per API over its official SDK, behind `Provider`."""

from modelrouter_server.providers.anthropic_provider import AnthropicProvider
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.connection import Connection
from modelrouter_server.providers.factory import (
    ProviderSetupError,
    ProviderTarget,
    build_providers,
    needs_emulator,
    resolve_targets,
)
from modelrouter_server.providers.openai_provider import CONTINUE_INSTRUCTION, OpenAIProvider

__all__ = [
    "CONTINUE_INSTRUCTION",
    "AnthropicProvider",
    "Connection",
    "OpenAIProvider",
    "Provider",
    "ProviderSetupError",
    "ProviderTarget",
    "build_providers",
    "needs_emulator",
    "resolve_targets",
]
