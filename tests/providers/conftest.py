"""Shared fixtures and builders: the emulator, and every provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from modelrouter_server.config import ProviderKind, load_config
from modelrouter_server.emulator import DEFAULT_MODELS, EmulatedModel, Emulator
from modelrouter_server.providers import AnthropicProvider, Connection, OpenAIProvider

from .support import API_KEY, CLAUDE, GPT_4O_MINI, TINY_CLAUDE, TINY_GPT, Case

TINY_MODELS = (
    EmulatedModel(id=TINY_CLAUDE, api="anthropic", context_window=64, max_output_tokens=32),
    EmulatedModel(id=TINY_GPT, api="openai", context_window=64, max_output_tokens=32),
)
EMULATED_MODELS = (*DEFAULT_MODELS, *TINY_MODELS)

CATALOG = load_config().models
"""The shipped model catalog: the OpenAI provider reads each model's capabilities from it."""

PROVIDER_KINDS = ("anthropic", "openai", "openai_compatible")


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EMULATED_MODELS) as emu:
        yield emu


def connection(base_url: str) -> Connection:
    return Connection(api_key=API_KEY, base_url=base_url, timeout_s=10.0, connect_timeout_s=2.0)


def build_case(kind: str, emulator: Emulator, *, anthropic_url: str, openai_url: str) -> Case:
    """The provider of one contract case (see `PROVIDER_KINDS`), at the given URLs."""
    if kind == "anthropic":
        provider = AnthropicProvider("anthropic", connection(anthropic_url))
        return Case(kind, "anthropic", provider, CLAUDE, TINY_CLAUDE, emulator)
    compatible = kind == "openai_compatible"
    openai_provider = OpenAIProvider(
        "local" if compatible else "openai",
        connection(openai_url),
        models=CATALOG,
        kind=ProviderKind.OPENAI_COMPATIBLE if compatible else ProviderKind.OPENAI,
    )
    return Case(kind, "openai", openai_provider, GPT_4O_MINI, TINY_GPT, emulator)
