"""Run `modelrouter serve` as a child process on free ports, against an emulator.

Shared by the benchmarks and the end-to-end tests (tests/cli, tests/grpcurl), which need
the real console command rather than an in-process server: they exercise what an operator
runs. The child gets a config derived from the built-in one with an in-memory conversation
store and its own metrics port, and an environment without provider keys, so it never
reaches a real API. It serves through its built-in emulator, or, given `emulator_url`,
through an emulator running elsewhere (the providers' base URLs point there).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modelrouter_testsupport.child_process import terminate
from modelrouter_testsupport.toml_writer import dump_toml

# Variables that would point the child at a real provider.
_PROVIDER_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")
# The SDKs refuse to start without a key; the emulator accepts any.
_EMULATOR_KEY = "emulator-accepts-any-key"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class RouterStartError(RuntimeError):
    """The router did not become healthy; the message carries its log's tail."""


@dataclass(frozen=True)
class RouterProcess:
    """A running router: where to reach it and where its log goes."""

    target: str
    port: int
    metrics_port: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    emulator_base_url: str

    def log(self) -> str:
        return _ANSI.sub("", self.log_path.read_text(errors="replace"))

    def emulator_url(self) -> str:
        """The emulator's base URL: the external one, or the built-in one's (its port is
        chosen here and written into the config, so nothing waits for a log line)."""
        return self.emulator_base_url

    def scrape_metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
        return body.decode()


def free_port() -> int:
    """A port that was free a moment ago (the OS may hand it out again: a small race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def modelrouter_command() -> list[str]:
    """The `modelrouter` console script beside this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "modelrouter"
    if script.exists():
        return [str(script)]
    found = shutil.which("modelrouter")
    return [found] if found else [sys.executable, "-m", "modelrouter_server.cli"]


def write_config(
    directory: Path,
    *,
    metrics_port: int,
    log_level: str = "info",
    provider_connections: int | None = None,
    emulator_url: str | None = None,
    emulator_port: int = 0,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    workers: int = 1,
) -> Path:
    """The built-in config with a memory store and `metrics_port`, served by the built-in
    emulator on `emulator_port`, or with every provider pointed at `emulator_url`.
    `provider_connections` sizes every provider's HTTP connection pool; `overrides`
    replaces keys per section. With several `workers` the conversations and the ledger are
    SQLite files in `directory` instead (workers share them; a memory store is refused)."""
    from modelrouter_server.config.loader import default_config_path

    config = tomllib.loads(default_config_path().read_text(encoding="utf-8"))
    config.setdefault("server", {}).update(metrics_port=metrics_port, log_level=log_level)
    # The tests and benchmarks script the built-in emulator over its admin endpoints.
    config.setdefault("emulator", {}).update(
        mode="off" if emulator_url else "always", admin=not emulator_url, port=emulator_port
    )
    if workers == 1:
        config.setdefault("context", {})["store"] = "memory"
    else:
        config.setdefault("context", {}).update(
            store="sqlite", sqlite_path=str(directory / "conversations.db")
        )
        config.setdefault("ledger", {}).update(sqlite_path=str(directory / "ledger.db"))
    for provider in config.get("providers", {}).values():
        if provider_connections is not None:
            provider["max_connections"] = provider_connections
        if emulator_url:
            # The OpenAI SDK's base URL includes the /v1 prefix; Anthropic's does not.
            suffix = "" if provider["kind"] == "anthropic" else "/v1"
            provider["base_url"] = emulator_url.rstrip("/") + suffix
    for section, values in (overrides or {}).items():
        config.setdefault(section, {}).update(values)
    path = directory / "modelrouter.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    return path


def start_router(
    directory: Path,
    *,
    metrics: bool = True,
    log_level: str = "info",
    provider_connections: int | None = None,
    emulator_url: str | None = None,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    timeout_s: float = 120.0,
    workers: int = 1,
) -> RouterProcess:
    """Start `modelrouter serve --workers N` in `directory` and wait until its health check
    says SERVING. `workers` 1 (the default): one process, as the tests expect; more: a
    supervisor and its workers (health answers once one serves). Raises RouterStartError
    (with the log) when it exits or times out first."""
    # Absolute: the child runs in `directory` and is handed paths inside it.
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    metrics_port = free_port() if metrics else 0
    emulator_port = 0 if emulator_url else free_port()
    config_path = write_config(
        directory,
        metrics_port=metrics_port,
        log_level=log_level,
        provider_connections=provider_connections,
        emulator_url=emulator_url,
        emulator_port=emulator_port,
        overrides=overrides,
        workers=workers,
    )
    log_path = directory / "router.log"
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_ENV}
    if emulator_url:
        env.update(ANTHROPIC_API_KEY=_EMULATOR_KEY, OPENAI_API_KEY=_EMULATOR_KEY)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *modelrouter_command(),
                "serve",
                "--config",
                str(config_path),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    router = RouterProcess(
        target=f"127.0.0.1:{port}",
        port=port,
        metrics_port=metrics_port,
        config_path=config_path,
        log_path=log_path,
        process=process,
        emulator_base_url=(emulator_url or f"http://127.0.0.1:{emulator_port}").rstrip("/"),
    )
    try:
        _wait_healthy(router, timeout_s)
    except BaseException:
        stop_router(router)
        raise
    return router


# The channel's reconnect backoff (1 s, growing) would otherwise leave seconds between the
# child listening and the first connection attempt that finds it.
_CONNECT_FAST = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


def _wait_healthy(router: RouterProcess, timeout_s: float) -> None:
    """Return once the health service says SERVING.

    Nothing polls: `Watch` holds the call until the server listens (`wait_for_ready`), then
    streams every status change; a thread cancels the call if the child exits first."""
    request = health_pb2.HealthCheckRequest(service="")
    with grpc.insecure_channel(router.target, options=_CONNECT_FAST) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        updates = stub.Watch(request, timeout=timeout_s, wait_for_ready=True)

        def cancel_when_the_child_exits() -> None:
            router.process.wait()
            updates.cancel()

        threading.Thread(target=cancel_when_the_child_exits, daemon=True).start()
        try:
            for reply in updates:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass  # cancelled, or the deadline passed: told apart below
        finally:
            updates.cancel()
    if router.process.poll() is not None:
        raise RouterStartError(
            f"modelrouter serve exited with {router.process.returncode}:\n" + _tail(router.log())
        )
    raise RouterStartError(
        f"modelrouter serve not healthy after {timeout_s:g} s:\n" + _tail(router.log())
    )


def stop_router(router: RouterProcess, *, grace_s: float = 10.0) -> int:
    """SIGTERM (the router drains in-flight RPCs), then SIGKILL after `grace_s`."""
    return terminate(router.process, grace_s=grace_s)


@contextmanager
def running_router(
    directory: Path, *, metrics: bool = True, log_level: str = "info", workers: int = 1
) -> Iterator[RouterProcess]:
    """`start_router` for the length of a `with` block."""
    router = start_router(directory, metrics=metrics, log_level=log_level, workers=workers)
    try:
        yield router
    finally:
        stop_router(router)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
