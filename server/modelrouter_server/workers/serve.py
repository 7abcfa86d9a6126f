"""`modelrouter serve` with several workers: what the supervisor sets up before it starts
them, and takes down after they have all exited (see `workers.supervisor`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

import structlog

from modelrouter_server.app import preflight, start_emulator, start_metrics
from modelrouter_server.config import RouterConfig
from modelrouter_server.context import open_store
from modelrouter_server.observability import AggregatedMetrics
from modelrouter_server.providers import needs_emulator
from modelrouter_server.tenancy import open_ledger
from modelrouter_server.workers.plan import per_worker
from modelrouter_server.workers.port import reserve_port
from modelrouter_server.workers.supervisor import Launch, Supervisor, worker_command

log = structlog.get_logger(__name__)


async def serve_workers(
    config: RouterConfig,
    *,
    count: int,
    config_path: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    metrics_port: int | None = None,
) -> int:
    """Supervise `count` workers until SIGINT or SIGTERM, then forward it and wait for
    every worker to drain; returns the exit status. The same checks as a single router
    fail here first, in one line, before any worker starts."""
    listen = host or config.server.host
    preflight(per_worker(config, count), listen)
    async with contextlib.AsyncExitStack() as owned:
        reserved = reserve_port(listen, config.server.port if port is None else port)
        owned.callback(reserved.close)
        await _check_stores(config)
        emulator = await start_emulator(config) if needs_emulator(config, env=os.environ) else None
        if emulator is not None:
            owned.push_async_callback(emulator.stop)
        directory = Path(tempfile.mkdtemp(prefix="modelrouter-metrics-"))
        owned.callback(shutil.rmtree, directory, ignore_errors=True)
        metrics = AggregatedMetrics(directory)
        bound_metrics = start_metrics(config, metrics.start_http, metrics_port)
        owned.callback(metrics.stop_http)
        launch = Launch(
            argv=worker_command(
                None if config_path is None else str(config_path), listen, reserved.port
            ),
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
            count=count,
            emulator_url=emulator.base_url if emulator else None,
        )
        supervisor = Supervisor(launch, metrics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop, sig)

        def serving() -> None:
            log.info(
                "serving",
                address=f"{listen}:{reserved.port}",
                workers=count,
                metrics=f"http://{config.server.metrics_host}:{bound_metrics}/metrics"
                if bound_metrics
                else "off",
                emulated=emulator is not None,
            )

        return await supervisor.run(serving)
    raise AssertionError("unreachable: the exit stack swallows no exception")


async def _check_stores(config: RouterConfig) -> None:
    """Open the conversation store and the ledger once, before the workers do: a store
    that cannot be opened fails here in one line, and an SQLite file is migrated by one
    process rather than raced by all."""
    store = await open_store(config.context)
    await store.aclose()
    ledger = await open_ledger(config)
    await ledger.aclose()
