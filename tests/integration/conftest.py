"""A real router on a real grpc.aio server (port 0) against the provider emulator.

Nothing is mocked: requests go client -> gRPC -> router -> official SDK -> HTTP ->
emulator, and the emulator is scripted per test.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App, emulated_models
from modelrouter_server.config import RouterConfig, default_config_path
from modelrouter_server.emulator import Emulator
from modelrouter_server.resilience import Clock

# Short timeouts so fault scenarios finish in seconds; the shapes are the production ones.
TEST_OVERRIDES: dict[str, dict[str, Any]] = {
    "server": {"metrics_port": 0, "shutdown_grace_s": 0.5},
    "resilience": {
        "max_attempts_per_model": 2,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "breaker_fail_max": 3,
        "breaker_reset_timeout_s": 0.5,
        "ttft_timeout_s": 2.0,
        "inter_token_timeout_s": 1.0,
    },
    "context": {"store": "memory"},
}


def make_config(**sections: dict[str, Any]) -> RouterConfig:
    raw = tomllib.loads(default_config_path().read_text())
    for name, values in {**TEST_OVERRIDES, **sections}.items():
        raw.setdefault(name, {}).update(values)
    return RouterConfig.model_validate(raw)


def request_counts(app: App, rpc: str) -> dict[str, float]:
    """How many `rpc` calls `app` counted as ended with each status code."""
    counts: dict[str, float] = {}
    for family in app.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "modelrouter_requests_total" and sample.labels["rpc"] == rpc:
                counts[sample.labels["code"]] = sample.value
    return counts


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(emulated_models(make_config())) as emu:
        yield emu


StartRouter = Callable[..., Awaitable[AsyncModelRouterClient]]


@pytest.fixture
async def start_router(emulator: Emulator) -> AsyncIterator[StartRouter]:
    """Start a router (config sections may be overridden) and return a client for it."""
    apps: list[App] = []
    clients: list[AsyncModelRouterClient] = []

    async def start(
        *,
        env: dict[str, str] | None = None,
        config: RouterConfig | None = None,
        upstream: Emulator | None = None,
        breaker_clock: Clock = time.monotonic,
        **sections: dict[str, Any],
    ) -> AsyncModelRouterClient:
        app = await App.start(
            config or make_config(**sections),
            env=env or {},
            host="127.0.0.1",
            port=0,
            emulator=upstream or emulator,
            breaker_clock=breaker_clock,
        )
        apps.append(app)
        client = AsyncModelRouterClient(f"127.0.0.1:{app.port}", default_timeout=30)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for app in apps:
        await app.stop(grace_s=0)


@pytest.fixture
async def router(start_router: StartRouter) -> AsyncModelRouterClient:
    return await start_router()
