"""The contract suites' fixtures: like the router, each provider (and its connection pool)
lives through many calls, one per module and kind, on one emulator per module whose script
and records are reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from modelrouter_server.emulator import Emulator
from modelrouter_server.providers import AnthropicProvider, OpenAIProvider

from ..conftest import CATALOG, EMULATED_MODELS, PROVIDER_KINDS, build_case, connection
from ..support import Case


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EMULATED_MODELS) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _fresh_script(emulator: Emulator) -> None:
    emulator.reset()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=PROVIDER_KINDS)
async def case(request: pytest.FixtureRequest, emulator: Emulator) -> AsyncIterator[Case]:
    """Each provider in turn: a contract suite runs once per provider kind."""
    built = build_case(
        request.param,
        emulator,
        anthropic_url=emulator.base_url,
        openai_url=emulator.openai_base_url,
    )
    yield built
    await built.provider.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def claude(emulator: Emulator) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider("anthropic", connection(emulator.base_url))
    yield provider
    await provider.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gpt(emulator: Emulator) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider("openai", connection(emulator.openai_base_url), models=CATALOG)
    yield provider
    await provider.aclose()
