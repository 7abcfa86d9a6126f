"""The supervisor: `modelrouter serve --workers N` for N > 1.

One process that owns what the workers share and serves no RPC itself:
- the port (`workers.port`), chosen and held here, so port 0 works;
- the emulator, started once when some provider has no key; every worker points at it;
- `/metrics`: the sum of the workers' series (prometheus_client's multiprocess mode, in a
  private temporary directory removed at exit);
- the workers, each restarted with backoff when it dies;
- the shutdown: SIGTERM or SIGINT is forwarded to every worker, each drains as a single
  router does, and the supervisor exits once all have.

A worker is a child process running this same command (`serve --worker JSON`), not a
`multiprocessing` one: it is then exactly `modelrouter serve` (the same start-up, the
same one-line errors and logs), nothing is pickled or inherited through fork (grpc does
not survive a fork once its threads run), and the supervisor needs only a pid, an exit
status and one socket per worker (`workers.worker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from modelrouter_server.observability import AggregatedMetrics
from modelrouter_server.workers.plan import WorkerSpec
from modelrouter_server.workers.worker import READY

log = structlog.get_logger(__name__)

# A worker that dies soon after starting is restarted after 0.5 s, then 1, 2, 4 ... up to
# 30 s while it keeps dying young; one that served for a while is restarted at once-ish.
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_STABLE_S = 30.0


@dataclass(frozen=True)
class Launch:
    """How to start the workers."""

    argv: Sequence[str]
    """`modelrouter serve` with the shared port and no metrics, less `--worker`."""
    env: Mapping[str, str]
    count: int
    emulator_url: str | None


def worker_command(config_path: str | None, host: str, port: int) -> list[str]:
    """This interpreter running `modelrouter serve` on the shared `host:port`."""
    argv = [sys.executable, "-m", "modelrouter_server.cli", "serve"]
    argv += ["--host", host, "--port", str(port), "--metrics-port", "0"]
    return argv + (["--config", config_path] if config_path is not None else [])


class Supervisor:
    def __init__(self, launch: Launch, metrics: AggregatedMetrics) -> None:
        self._launch = launch
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._running: dict[int, asyncio.subprocess.Process] = {}
        self._first: list[asyncio.Future[int | None]] = []

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Forward `sig` to every worker (each drains); none is restarted from now on."""
        if not self._stopping.is_set():
            log.info("shutting_down", signal=signal.Signals(sig).name, workers=len(self._running))
        self._stopping.set()
        for process in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)

    async def run(self, on_serving: Callable[[], None]) -> int:
        """Start every worker, call `on_serving` once all serve, keep them running until
        `stop`, and return once all have exited: 0, or the status of a worker that could
        not start (the others are stopped then)."""
        loop = asyncio.get_running_loop()
        self._first = [loop.create_future() for _ in range(self._launch.count)]
        slots = [asyncio.create_task(self._keep(i)) for i in range(self._launch.count)]
        try:
            failed = await self._started()
            if failed is None:
                on_serving()
            elif self._stopping.is_set() and failed <= 0:
                failed = None  # stopped by a signal while starting: not a failure
            else:
                self.stop()
            await asyncio.gather(*slots)
        except BaseException:
            self.stop()
            await asyncio.gather(*slots, return_exceptions=True)
            raise
        return 0 if failed is None else max(failed, 1)

    async def _started(self) -> int | None:
        """None once every worker serves; the status of the first that exits instead."""
        for first in asyncio.as_completed(self._first):
            code = await first
            if code is not None:
                return code
        return None

    async def _keep(self, index: int) -> None:
        """Run worker `index`, and again each time it dies, until `stop` (or until its
        first start fails: then the supervisor gives up)."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            started = loop.time()
            first = self._first[index]
            code, pid = await self._run_once(index)
            if self._stopping.is_set():
                log.info("worker_stopped", worker=index, pid=pid, code=code)
            elif not first.done():
                log.error("worker_failed_to_start", worker=index, pid=pid, code=code)
            if not first.done():  # it never served: `run` hears of its status
                first.set_result(code)
            if self._stopping.is_set() or first.result() is not None:
                return
            failures = failures + 1 if loop.time() - started < _STABLE_S else 1
            delay = min(_MAX_BACKOFF_S, _FIRST_BACKOFF_S * 2 ** (failures - 1))
            log.error("worker_exited", worker=index, pid=pid, code=code, restart_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, index: int) -> tuple[int, int]:
        """Start worker `index` and wait for it to exit: (its exit status, its pid)."""
        ours, theirs = socket.socketpair()
        try:
            with theirs:
                launch = self._launch
                spec = WorkerSpec(index, launch.count, theirs.fileno(), launch.emulator_url)
                process = await asyncio.create_subprocess_exec(
                    *self._launch.argv, "--worker", spec.to_arg(),
                    pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                    env=dict(self._launch.env),
                )  # fmt: skip
            self._running[index] = process
            if self._stopping.is_set():  # a stop that arrived while it was being started
                process.terminate()
            log.info("worker_started", worker=index, pid=process.pid)
            await self._ready(ours, index, process.pid)
            code = await process.wait()
        finally:
            self._running.pop(index, None)
            ours.close()
        self._metrics.worker_gone(process.pid)
        return code, process.pid

    async def _ready(self, ours: socket.socket, index: int, pid: int) -> None:
        """Wait until the worker says it serves (its first time: `run` hears of it) or
        its end of the pair closes (it died first)."""
        ours.setblocking(False)
        try:
            said = await asyncio.get_running_loop().sock_recv(ours, len(READY))
        except OSError:
            said = b""
        if said != READY:
            return
        log.info("worker_ready", worker=index, pid=pid)
        if not self._first[index].done():
            self._first[index].set_result(None)
