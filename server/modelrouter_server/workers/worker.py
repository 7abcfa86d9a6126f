"""One worker: `modelrouter serve` as the supervisor starts it (`serve --worker JSON`).

It serves like a single router, with three differences: it binds the shared port with
SO_REUSEPORT, it uses the supervisor's emulator (if any) instead of starting its own, and
it serves no /metrics (its series go to the supervisor's multiprocess directory, named
by PROMETHEUS_MULTIPROC_DIR in its environment). It tells the supervisor it is serving
over a socket pair, and drains and exits when that socket reaches end-of-file: the
supervisor is gone, so nobody would restart or stop this worker.
"""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

from modelrouter_server.app import App, freeze_startup_heap, stop_on_signals
from modelrouter_server.config import RouterConfig
from modelrouter_server.workers.plan import WorkerSpec, per_worker

log = structlog.get_logger(__name__)

READY = b"ready\n"


async def serve_worker(config: RouterConfig, spec: WorkerSpec, *, host: str, port: int) -> None:
    """Serve as worker `spec.index` until SIGTERM/SIGINT or the supervisor is gone, then
    drain as a single router does."""
    structlog.contextvars.bind_contextvars(worker=spec.index)
    line = socket.socket(fileno=spec.line_fd)
    line.setblocking(False)
    try:
        app = await App.start(
            per_worker(config, spec.count),
            env=os.environ,
            host=host,
            port=port,
            metrics_port=0,
            emulator_url=spec.emulator_url,
            reuse_port=True,
        )
        freeze_startup_heap()
        stop = asyncio.Event()
        stop_on_signals(stop)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(line, READY)
        orphaned = asyncio.create_task(_supervisor_gone(line, stop))
        try:
            await stop.wait()
        finally:
            log.info("shutting_down")
            orphaned.cancel()
            await asyncio.wait([orphaned])  # ends it; its cancellation is ours, not raised
            await app.stop()
    finally:
        line.close()


async def _supervisor_gone(line: socket.socket, stop: asyncio.Event) -> None:
    """Set `stop` when the supervisor's end of `line` closes (it never writes)."""
    loop = asyncio.get_running_loop()
    try:
        while await loop.sock_recv(line, 64):
            pass
    except OSError:
        pass  # a reset: gone as well
    log.warning("supervisor_gone")
    stop.set()
