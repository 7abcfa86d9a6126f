"""Fixtures for context management: a test catalog with small windows, the emulator serving
it, real providers pointed at it, and a private redis-server for the Redis store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.emulator import DEFAULT_MODELS, EmulatedModel, Emulator
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.factory import build_providers

GPT = "gpt-4o-mini-2024-07-18"
CLAUDE = "claude-3-7-sonnet-20250219"
SMALL_GPT = "small-gpt"
SMALL_CLAUDE = "small-claude"
GPT4 = "gpt-4-0613"

SMALL_WINDOW = 4_000


def make_config(**context: object) -> RouterConfig:
    """The test catalog: the real models plus small-window ones that make long
    conversations cheap to run; `context` overrides `[context]` settings."""
    settings: dict[str, object] = {
        "summarize_threshold": 0.8,
        "safety_margin_tokens": 100,
        "summarizer_model": "gpt-4o-mini",
        "summary_max_tokens": 200,
        "store": "memory",
        "anthropic_estimate_margin": 0.1,
    }
    settings.update(context)
    return RouterConfig.model_validate(
        {
            "providers": {
                "anthropic": {"kind": "anthropic", "api_key_env": "TEST_ANTHROPIC_KEY"},
                "openai": {"kind": "openai", "api_key_env": "TEST_OPENAI_KEY"},
            },
            "models": {
                GPT: {
                    "provider": "openai",
                    "context_window": 128_000,
                    "max_output_tokens": 16_384,
                    "aliases": ["gpt-4o-mini"],
                    "tokenizer": "o200k_base",
                    "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.60},
                },
                CLAUDE: {
                    "provider": "anthropic",
                    "context_window": 200_000,
                    "max_output_tokens": 64_000,
                    "aliases": ["sonnet"],
                    "tokenizer": "anthropic",
                    "pricing": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
                },
                SMALL_GPT: {
                    "provider": "openai",
                    "context_window": SMALL_WINDOW,
                    "max_output_tokens": 1_000,
                    "tokenizer": "o200k_base",
                },
                SMALL_CLAUDE: {
                    "provider": "anthropic",
                    "context_window": SMALL_WINDOW,
                    "max_output_tokens": 1_000,
                    "tokenizer": "anthropic",
                },
                GPT4: {
                    "provider": "openai",
                    "context_window": 8_192,
                    "max_output_tokens": 4_096,
                    "tokenizer": "cl100k_base",
                },
            },
            "routing": {"default": [SMALL_GPT, SMALL_CLAUDE]},
            "context": settings,
        }
    )


EMULATED_MODELS = (
    *DEFAULT_MODELS,
    EmulatedModel(id=SMALL_GPT, api="openai", context_window=SMALL_WINDOW, max_output_tokens=1_000),
    EmulatedModel(
        id=SMALL_CLAUDE, api="anthropic", context_window=SMALL_WINDOW, max_output_tokens=1_000
    ),
)


@pytest.fixture
def config() -> RouterConfig:
    return make_config()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(EMULATED_MODELS) as emu:
        yield emu


@pytest.fixture
async def providers(config: RouterConfig, emulator: Emulator) -> AsyncIterator[dict[str, Provider]]:
    """Every configured provider, built by the factory and served by the emulator."""
    built = build_providers(config, env={}, emulator_base_url=emulator.base_url)
    yield built
    for provider in built.values():
        await provider.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _ReadyLine:
    """Drains a child's output in a thread and signals when its "ready" line appears or
    the output ends (the child exited): an event to wait on, not a port to poll."""

    def __init__(self, process: subprocess.Popen[bytes], marker: bytes) -> None:
        self.seen = False
        self.done = threading.Event()
        self._process = process
        self._marker = marker
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:  # read to the end, so the child never blocks
            if not self.seen and self._marker in line:
                self.seen = True
                self.done.set()
        self.done.set()

    def wait(self, timeout_s: float) -> None:
        if not self.done.wait(timeout_s):
            raise RuntimeError(f"redis-server was not ready within {timeout_s:g} s")
        if not self.seen:
            raise RuntimeError(f"redis-server exited with {self._process.wait()}")


class RedisServer:
    """A private redis-server process on a free port, without persistence."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self._args = [
            executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        _ReadyLine(self._process, b"Ready to accept connections").wait(timeout_s=10.0)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


requires_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (apt-get install redis-server); CI installs it",
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; each test uses its own key prefix."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server); CI installs it")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
