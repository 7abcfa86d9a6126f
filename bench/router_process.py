"""`modelrouter serve` as the bench runs it: bench/router.toml pointed at the stand-in.

With `workers`, the router is started with `--workers N` when this build has the flag
(`serve --help` says so); without the flag only the one-process router exists.
"""

from __future__ import annotations

import functools
import os
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter_testsupport.child_process import terminate
from modelrouter_testsupport.router_process import free_port, modelrouter_command
from modelrouter_testsupport.toml_writer import dump_toml

from bench.machine import tree_cpu_s, tree_rss_bytes

TEMPLATE = Path(__file__).resolve().parent / "router.toml"
MODEL = "standin-model"
# Variables that would point the child at a real provider.
_PROVIDER_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")


@dataclass(frozen=True)
class BenchRouter:
    target: str
    metrics_port: int
    workers: int
    log_path: Path
    process: subprocess.Popen[bytes]

    def rss_bytes(self) -> int:
        """Resident memory of the router: its process and every worker it started."""
        return tree_rss_bytes(self.process.pid)

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)


@functools.cache
def supports_workers() -> bool:
    """Whether this build's `modelrouter serve` takes `--workers N`."""
    result = subprocess.run(
        [*modelrouter_command(), "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return "--workers" in result.stdout


def write_config(directory: Path, standin_base_url: str) -> Path:
    config = tomllib.loads(TEMPLATE.read_text(encoding="utf-8"))
    config["providers"]["standin"]["base_url"] = standin_base_url
    path = directory / "modelrouter.toml"
    path.write_text(dump_toml(config), encoding="utf-8")
    return path


def start(directory: Path, standin_base_url: str, *, workers: int | None) -> BenchRouter:
    """Start the router; returns once its health service says SERVING. `workers` None: the
    flag is not passed (a build without it)."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, standin_base_url)
    port, metrics_port = free_port(), free_port()
    command = [*modelrouter_command(), "serve", "--config", str(config)]
    command += ["--port", str(port), "--metrics-port", str(metrics_port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if k not in _PROVIDER_ENV}
    log_path = directory / "router.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    router = BenchRouter(f"127.0.0.1:{port}", metrics_port, workers or 1, log_path, process)
    try:
        _wait_serving(router, timeout_s=120.0)
        _wait_listening(router, port, timeout_s=120.0)
    except BaseException:
        stop(router)
        raise
    return router


def _wait_serving(router: BenchRouter, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    request = health_pb2.HealthCheckRequest(service="")
    with grpc.insecure_channel(router.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if router.process.poll() is not None:
                tail = router.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"modelrouter serve exited:\n{tail}")
            try:
                reply = stub.Check(request, timeout=1.0, wait_for_ready=True)
            except grpc.RpcError:
                continue  # not listening yet; the check itself waited
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.1)
    raise RuntimeError(f"modelrouter serve not healthy after {timeout_s:g} s")


def listeners(port: int) -> int:
    """Sockets listening on `port` (Linux /proc/net/tcp*): one per worker, as each worker
    listens on the shared port with SO_REUSEPORT."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def _wait_listening(router: BenchRouter, port: int, *, timeout_s: float) -> None:
    """Until every worker listens: the first one healthy is not all of them, and the
    kernel spreads connections only over the listening ones."""
    deadline = time.monotonic() + timeout_s
    while listeners(port) < router.workers:
        if router.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{listeners(port)} of {router.workers} workers listen on port {port}"
            )
        time.sleep(0.2)


def stop(router: BenchRouter, *, grace_s: float = 15.0) -> None:
    """SIGTERM (the router drains), SIGKILL after `grace_s`."""
    terminate(router.process, grace_s=grace_s)
