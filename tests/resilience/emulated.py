"""The integration rig: the real router, breakers, chain, providers and SDKs, against the
in-process provider emulator. Short timeouts keep the fault suite fast."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.config.loader import load_config
from modelrouter_server.config.schema import (
    EmulatorConfig,
    EmulatorMode,
    ResilienceConfig,
    RouterConfig,
)
from modelrouter_server.domain import (
    GenerateOptions,
    Message,
    ProviderRequest,
    Role,
    TextChunk,
)
from modelrouter_server.emulator import Emulator
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.factory import build_providers
from modelrouter_server.resilience import (
    BreakerRegistry,
    ChainEvent,
    CircuitTransition,
    Clock,
    FallbackChain,
)
from modelrouter_server.routing import Router

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
O3 = "o3-mini-2025-01-31"

CONVERSATION = (
    Message(Role.SYSTEM, "You are a terse assistant."),
    Message(Role.USER, "Explain what a circuit breaker does in a service."),
)

FAST_POLICY: dict[str, Any] = {
    "max_attempts_per_model": 2,
    "backoff_initial_s": 0.02,
    "backoff_max_s": 0.1,
    "backoff_jitter": 0.0,
    "max_retry_after_s": 1.0,
    "breaker_fail_max": 3,
    "breaker_reset_timeout_s": 0.3,
    "ttft_timeout_s": 1.0,
    "inter_token_timeout_s": 1.0,
    "default_deadline_s": 10.0,
}


def emulated_config(
    *, providers: Mapping[str, Mapping[str, Any]] | None = None, **policy: Any
) -> RouterConfig:
    """The shipped default config, every provider emulated, with fast resilience settings.

    `providers` overrides provider fields by name (e.g. a short SDK timeout)."""
    base = load_config(None)
    resilience = ResilienceConfig.model_validate({**FAST_POLICY, **policy})
    provider_configs = dict(base.providers)
    for name, fields in (providers or {}).items():
        provider_configs[name] = provider_configs[name].model_copy(update=dict(fields))
    return base.model_copy(
        update={
            "resilience": resilience,
            "emulator": EmulatorConfig(mode=EmulatorMode.ALWAYS),
            "providers": provider_configs,
        }
    )


class RecordedSleep:
    """The chain's sleep: really waits, and keeps each wait it was asked for, so a test
    asserts the waits the retry loop chose rather than timing them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


class Rig:
    """One router + breakers + chain over the given providers.

    `breaker_clock` times the breakers' cool-downs (a fake one lets a test end a cool-down
    without waiting it out); the chain's waits are recorded in `sleeps`.
    """

    def __init__(
        self,
        config: RouterConfig,
        providers: Mapping[str, Provider],
        *,
        breaker_clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.transitions: list[CircuitTransition] = []
        self.breakers = BreakerRegistry.from_config(
            config.resilience, observers=[self.transitions.append], clock=breaker_clock
        )
        self.router = Router(config, self.breakers.allows)
        self.sleeps = RecordedSleep()
        self.chain = FallbackChain(providers, self.breakers, config.resilience, sleep=self.sleeps)
        self.requests = 0

    def plan(self, **options: Any) -> RoutePlan:
        return self.router.plan(
            GenerateOptions(messages=CONVERSATION, **options), prompt_tokens=lambda _model: 60
        )

    async def build(self, candidate: Candidate, timeout_s: float | None) -> ProviderRequest:
        self.requests += 1
        return candidate.request(
            CONVERSATION, timeout_s=timeout_s, request_id=f"req-{self.requests}"
        )

    def deadline(self, seconds: float = 10.0) -> float:
        return time.monotonic() + seconds

    async def stream(self, plan: RoutePlan, *, deadline: float | None = None) -> list[ChainEvent]:
        events = self.chain.stream(plan, self.build, deadline=deadline or self.deadline())
        return [event async for event in events]

    def moves(self, model: str) -> list[tuple[str, str]]:
        return [
            (t.from_state.value, t.to_state.value) for t in self.transitions if t.model == model
        ]


def text_of(events: list[ChainEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextChunk))


@contextlib.asynccontextmanager
async def rig_for(
    emu: Emulator, config: RouterConfig, *, breaker_clock: Clock = time.monotonic
) -> AsyncIterator[Rig]:
    """A `Rig` over providers built by the real factory and pointed at `emu`."""
    providers = build_providers(config, env={}, emulator_base_url=emu.base_url)
    try:
        yield Rig(config, providers, breaker_clock=breaker_clock)
    finally:
        for provider in providers.values():
            await provider.aclose()
