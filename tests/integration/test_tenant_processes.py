"""Tenant limits shared by two `modelrouter serve` processes on one SQLite ledger: the way
several workers on one host share them."""

from __future__ import annotations

import asyncio
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter_client import ModelRouterClient
from modelrouter_server.config.loader import default_config_path
from modelrouter_server.tenancy import SQLiteLedger, key_digest, new_key
from modelrouter_testsupport.router_process import free_port, modelrouter_command
from modelrouter_testsupport.toml_writer import dump_toml

ALICE = new_key()


def _config(directory: Path) -> Path:
    config = tomllib.loads(default_config_path().read_text(encoding="utf-8"))
    config["server"].update(metrics_port=0, shutdown_grace_s=0.5)
    config["emulator"] = {"mode": "always"}
    config["context"]["store"] = "memory"
    config["ledger"] = {"store": "sqlite", "sqlite_path": str(directory / "ledger.db")}
    config["auth"] = {"mode": "api_key"}
    config["tenants"] = {"alice": {"api_key_sha256": key_digest(ALICE), "requests_per_minute": 5}}
    path = directory / "router.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    return path


def _serve(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`modelrouter serve` with `config` (run in its directory) on a free port, its output
    to `log`; returns the process and its target, without waiting for it to serve."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*modelrouter_command(), "serve", "--config", str(config), "--port", str(port)],
            cwd=config.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"127.0.0.1:{port}"


def _healthy(target: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise AssertionError(f"router exited:\n{log.read_text(errors='replace')}")
            try:
                stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)  # polling a child process's start-up, not timing a test


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[list[str]]:
    config = _config(tmp_path)
    processes: list[subprocess.Popen[bytes]] = []
    targets = []
    try:
        for i in range(2):
            log = tmp_path / f"router-{i}.log"
            process, target = _serve(config, log)
            processes.append(process)
            _healthy(target, process, log)
            targets.append(target)
        yield targets
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
    for i in range(2):
        assert ALICE not in (tmp_path / f"router-{i}.log").read_text(errors="replace")


def test_a_rate_limit_holds_across_two_worker_processes(two_workers: list[str]) -> None:
    clients = [ModelRouterClient(t, api_key=ALICE, default_timeout=30) for t in two_workers]
    try:
        codes = []
        for i in range(8):
            try:
                clients[i % 2].generate("Hi", max_output_tokens=20)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
        assert codes == [grpc.StatusCode.OK] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
        assert [c.get_usage().day.requests for c in clients] == [5, 5]
    finally:
        for client in clients:
            client.close()


def test_usage_of_a_tenant_without_limits_survives_a_graceful_shutdown(tmp_path: Path) -> None:
    """Such use is written in batches (not per request): stopping the process writes the
    last batch."""
    config = tomllib.loads(_config(tmp_path).read_text(encoding="utf-8"))
    del config["auth"], config["tenants"]  # no auth: every call is the default tenant's
    path = tmp_path / "open.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    log = tmp_path / "router.log"
    process, target = _serve(path, log)
    try:
        _healthy(target, process, log)
        with ModelRouterClient(target, default_timeout=30) as client:
            replies = [client.generate("Hi", max_output_tokens=20) for _ in range(3)]
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text(errors="replace")

    async def usage_on_file() -> tuple[int, int, float]:
        ledger = await SQLiteLedger.open(tmp_path / "ledger.db")
        try:
            day = (await ledger.usage("default")).day
            return day.requests, day.tokens, day.cost_usd
        finally:
            await ledger.aclose()

    requests, tokens, cost = asyncio.run(usage_on_file())
    assert requests == 3
    assert tokens == sum(r.usage.input_tokens + r.usage.output_tokens for r in replies)
    assert cost == pytest.approx(sum(r.usage.cost_usd for r in replies))
