"""Building providers from config and environment: emulated or real, and where they point."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import pytest
from modelrouter_server.config import RouterConfig, load_config
from modelrouter_server.domain import Message, Role
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import ProviderTimeout
from modelrouter_server.providers import (
    Connection,
    Provider,
    ProviderSetupError,
    build_providers,
    needs_emulator,
    resolve_targets,
)

from .support import CLAUDE, GPT_4O_MINI, request

# A fake key in the real shape, assembled so secret scanners do not flag the tree.
ANTHROPIC_KEY = "sk-ant-" + "api03-factory-secret-" + "0" * 12
OPENAI_KEY = "sk-proj-factory-secret-111111111111"
LOCAL_MODEL = GPT_4O_MINI + "-local"


def config(
    mode: str = "auto",
    *,
    local_base_url: str | None = None,
    timeout_s: float = 10.0,
    max_connections: int = 200,
    pool_timeout_s: float = 10.0,
) -> RouterConfig:
    """Anthropic and OpenAI providers, and a `local` OpenAI-compatible one if given a URL."""
    limits = {
        "timeout_s": timeout_s,
        "connect_timeout_s": 2.0,
        "max_connections": max_connections,
        "pool_timeout_s": pool_timeout_s,
    }
    providers: dict[str, object] = {
        "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY", **limits},
        "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY", **limits},
    }
    window = {"context_window": 128_000, "max_output_tokens": 16_384}
    models: dict[str, object] = {
        CLAUDE: {"provider": "anthropic", **window},
        GPT_4O_MINI: {"provider": "openai", **window},
    }
    if local_base_url is not None:
        providers["local"] = {"kind": "openai_compatible", "base_url": local_base_url}
        models[LOCAL_MODEL] = {"provider": "local", **window}
    return RouterConfig.model_validate(
        {
            "providers": providers,
            "models": models,
            "routing": {"default": [GPT_4O_MINI]},
            "emulator": {"mode": mode},
        }
    )


@pytest.fixture
async def second_emulator() -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        yield emu


async def ask(provider: Provider, model: str) -> str:
    completion = await provider.complete(request(model, Message(Role.USER, "Hi.")))
    return completion.text


async def close_all(providers: Mapping[str, Provider]) -> None:
    for provider in providers.values():
        await provider.aclose()


async def test_without_keys_the_shipped_config_runs_on_the_emulator(emulator: Emulator) -> None:
    shipped = load_config()

    providers = build_providers(shipped, env={}, emulator_base_url=emulator.base_url)
    try:
        assert all(p.emulated for p in providers.values())
        await ask(providers["anthropic"], CLAUDE)
        await ask(providers["openai"], GPT_4O_MINI)
    finally:
        await close_all(providers)

    assert [r.path for r in emulator.requests] == ["/v1/messages", "/v1/chat/completions"]
    targets = resolve_targets(shipped, env={}, emulator_base_url=emulator.base_url)
    assert targets["anthropic"].base_url == emulator.base_url
    assert targets["openai"].base_url == emulator.openai_base_url


async def test_a_key_makes_a_provider_real() -> None:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY}

    targets = resolve_targets(config(), env=env, emulator_base_url="http://127.0.0.1:1")

    assert not targets["anthropic"].emulated
    assert targets["anthropic"].base_url is None
    assert targets["anthropic"].key_source == "ANTHROPIC_API_KEY"
    assert targets["openai"].emulated


async def test_sdk_base_url_variables_are_honoured(
    emulator: Emulator, second_emulator: Emulator
) -> None:
    env = {
        "ANTHROPIC_BASE_URL": second_emulator.base_url,
        "OPENAI_BASE_URL": second_emulator.openai_base_url,
    }

    providers = build_providers(config(), env=env, emulator_base_url=emulator.base_url)
    try:
        assert not any(p.emulated for p in providers.values())
        await ask(providers["anthropic"], CLAUDE)
        await ask(providers["openai"], GPT_4O_MINI)
    finally:
        await close_all(providers)

    assert emulator.requests == []
    assert [r.path for r in second_emulator.requests] == ["/v1/messages", "/v1/chat/completions"]


async def test_always_emulates_every_provider_even_with_keys(
    emulator: Emulator, second_emulator: Emulator
) -> None:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}
    routed = config("always", local_base_url=second_emulator.openai_base_url)

    providers = build_providers(routed, env=env, emulator_base_url=emulator.base_url)
    try:
        assert all(p.emulated for p in providers.values())
        await ask(providers["local"], GPT_4O_MINI)
    finally:
        await close_all(providers)

    assert len(emulator.requests) == 1
    assert second_emulator.requests == []


async def test_a_compatible_server_is_not_emulated_under_auto(
    emulator: Emulator, second_emulator: Emulator
) -> None:
    routed = config(local_base_url=second_emulator.openai_base_url)

    providers = build_providers(routed, env={}, emulator_base_url=emulator.base_url)
    try:
        assert not providers["local"].emulated
        await ask(providers["local"], GPT_4O_MINI)
    finally:
        await close_all(providers)

    [sent] = second_emulator.requests
    body = sent.body
    assert isinstance(body, dict)
    assert "max_tokens" in body  # the compatible dialect
    assert sent.auth == "bearer"  # a placeholder key, since local servers ignore it
    targets = resolve_targets(routed, env={}, emulator_base_url=emulator.base_url)
    assert targets["local"].key_source == "none (placeholder)"


def test_off_without_a_key_names_the_missing_variable() -> None:
    with pytest.raises(ProviderSetupError, match="ANTHROPIC_API_KEY is not set"):
        build_providers(config("off"), env={}, emulator_base_url=None)


def test_a_compatible_server_without_a_url_is_refused() -> None:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}

    with pytest.raises(ProviderSetupError, match=r"providers\.local"):
        build_providers(config(local_base_url=""), env=env, emulator_base_url=None)


def test_emulated_providers_need_a_running_emulator() -> None:
    assert needs_emulator(config(), env={})
    with pytest.raises(ProviderSetupError, match="no emulator is running"):
        build_providers(config(), env={}, emulator_base_url=None)


def test_with_every_key_set_no_emulator_is_needed() -> None:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}

    assert not needs_emulator(config(), env=env)
    assert needs_emulator(config("always"), env=env)


def test_no_key_in_descriptions_or_reprs() -> None:
    env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY}

    targets = resolve_targets(config(), env=env, emulator_base_url=None)
    shown = [repr(targets), *(t.describe() for t in targets.values())]
    shown.append(repr(Connection(api_key=ANTHROPIC_KEY, base_url="http://x")))

    for text in shown:
        assert ANTHROPIC_KEY not in text
        assert OPENAI_KEY not in text
    assert targets["openai"].describe() == (
        "openai (openai): the SDK's default endpoint, key from OPENAI_API_KEY"
    )


async def test_timeouts_come_from_the_config(emulator: Emulator) -> None:
    emulator.set_behavior(CLAUDE, Behavior(latency_s=5.0))
    providers = build_providers(config(timeout_s=0.2), env={}, emulator_base_url=emulator.base_url)
    slow = request(CLAUDE, Message(Role.USER, "Hi."), timeout_s=None)
    try:
        with pytest.raises(ProviderTimeout):
            await providers["anthropic"].complete(slow)
    finally:
        await close_all(providers)


async def test_the_pool_holds_max_connections(emulator: Emulator) -> None:
    emulator.set_behavior(CLAUDE, Behavior(stall_after_tokens=1, stall_s=30.0))
    routed = config(max_connections=1, pool_timeout_s=0.3)
    providers = build_providers(routed, env={}, emulator_base_url=emulator.base_url)
    claude = providers["anthropic"]
    held = claude.stream(request(CLAUDE, Message(Role.USER, "Hi.")))
    assert isinstance(held, AsyncGenerator)
    try:
        await anext(held)  # the one connection is now busy with a stalled stream
        with pytest.raises(ProviderTimeout, match=r"no free connection in the pool within 0\.3s"):
            await claude.complete(request(CLAUDE, Message(Role.USER, "Again.")))
    finally:
        await held.aclose()
        await close_all(providers)
