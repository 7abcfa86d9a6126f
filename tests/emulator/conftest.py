"""Fixtures: a fresh emulator on port 0 per test, and the official SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import httpx2
import openai
import pytest
from modelrouter_server.emulator import Emulator

from .support import API_KEY


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """With its admin endpoints: some tests script it over HTTP."""
    async with Emulator(admin=True) as emu:
        yield emu


@pytest.fixture
async def claude(emulator: Emulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=emulator.base_url, api_key=API_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def gpt(emulator: Emulator) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key=API_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    """A plain HTTP client, for what the SDKs hide (raw SSE, missing headers)."""
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client
