"""Fixtures for context management: a test catalog with small windows, the emulator serving
it, real providers pointed at it, and private redis-servers (one, or a three-node cluster)
for the Redis store."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.emulator import DEFAULT_MODELS, EmulatedModel, Emulator
from modelrouter_server.providers.base import Provider
from modelrouter_server.providers.factory import build_providers
from modelrouter_server.redis_connection import RedisClient, parse_redis_url
from modelrouter_testsupport.child_process import terminate
from redis.asyncio.cluster import RedisCluster

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


class _OutputWatch:
    """Drains a child's output in a thread and signals when a watched line appears or the
    output ends (the child exited): events to wait on, not a port to poll."""

    def __init__(self, process: subprocess.Popen[bytes], markers: tuple[bytes, ...]) -> None:
        self._process = process
        self._markers = markers
        self._seen: set[bytes] = set()
        self._ended = False
        self._changed = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:  # read to the end, so the child never blocks
            for marker in self._markers:
                if marker in line and marker not in self._seen:
                    with self._changed:
                        self._seen.add(marker)
                        self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait(self, marker: bytes, timeout_s: float) -> None:
        with self._changed:
            if not self._changed.wait_for(
                lambda: marker in self._seen or self._ended, timeout=timeout_s
            ):
                raise RuntimeError(f"redis-server: no {marker!r} within {timeout_s:g} s")
            if marker not in self._seen:
                raise RuntimeError(f"redis-server exited with {self._process.wait()}")


_READY = b"Ready to accept connections"
_CLUSTER_OK = b"Cluster state changed: ok"


class RedisServer:
    """A private redis-server process on a free port, without persistence."""

    def __init__(self, directory: Path, *extra: str) -> None:
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
            *extra,
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self._output: _OutputWatch | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._output = _OutputWatch(self._process, (_READY, _CLUSTER_OK))
        self._output.wait(_READY, timeout_s=10.0)

    def wait_for_line(self, marker: bytes, timeout_s: float) -> None:
        assert self._output is not None, "not started"
        self._output.wait(marker, timeout_s)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        terminate(process, grace_s=10)


class RedisClusterServers:
    """Three private redis-server processes joined into one Redis Cluster (no replicas):
    every hash slot has a node, so keys spread over three processes."""

    def __init__(self, directory: Path, *extra: str, nodes: int = 3) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                # Its own free port: the default (port + 10000) may be taken or past 65535.
                "--cluster-port",
                str(free_port()),
                *extra,
            )
            for i in range(nodes)
        ]
        for i in range(nodes):
            (directory / f"node{i}").mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """Any one node: the client discovers the others."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (it comes with redis-server)")
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            # Assigns the slots and joins the nodes; it returns once they agree on the layout.
            subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            for node in self.nodes:  # each node says so once it serves every slot
                node.wait_for_line(_CLUSTER_OK, timeout_s=30.0)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def raw_redis(url: str) -> RedisClient:
    """A plain client for a store's URL (one server or a cluster), for tests that look at
    or damage the keys themselves."""
    target = parse_redis_url(url)
    if target.cluster:
        return RedisCluster.from_url(target.url, decode_responses=True)
    return aioredis.Redis.from_url(target.url, decode_responses=True)


_NO_REDIS = "redis-server is not installed (apt-get install redis-server); CI installs it"

requires_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason=_NO_REDIS)


_Servers = TypeVar("_Servers", RedisServer, RedisClusterServers)


@contextmanager
def _started(make: Callable[[Path], _Servers], directory: Path) -> Iterator[_Servers]:
    if shutil.which("redis-server") is None:
        pytest.skip(_NO_REDIS)
    servers = make(directory)
    servers.start()
    yield servers
    servers.stop()


def running_redis(directory: Path) -> AbstractContextManager[RedisServer]:
    """A started `RedisServer` for a fixture's `with` block; skips the test when
    redis-server is not installed."""
    return _started(RedisServer, directory)


def running_redis_cluster(directory: Path) -> AbstractContextManager[RedisClusterServers]:
    """`running_redis` for a three-node Redis Cluster."""
    return _started(RedisClusterServers, directory)
