"""Fixtures for the fault suite: a running emulator and the real providers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from modelrouter_server.emulator import Emulator

from .emulated import Rig, emulated_config, rig_for


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
async def rig(emu: Emulator) -> AsyncIterator[Rig]:
    """The default config (fast resilience settings) over the real SDKs and the emulator."""
    async with rig_for(emu, emulated_config()) as built:
        yield built
