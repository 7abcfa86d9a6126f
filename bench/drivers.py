"""How each system is driven: ghz for modelrouter's gRPC API, the Python `openai` SDK
client (bench/sdk_load.py, its own process) for the OpenAI-compatible endpoints (the
stand-in called directly, LiteLLM). Both give a `LoadRun` per load."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bench.cancel_probe import CancelProbe, probe_router, probe_sdk
from bench.gap_probe import Gaps, gaps_router, gaps_sse
from bench.ghz import run_ghz
from bench.loadrun import LoadRun, from_ghz
from bench.settings import StreamRow

ROOT = Path(__file__).resolve().parents[1]


class Driver(Protocol):
    def run(
        self,
        name: str,
        *,
        prompt: str,
        concurrency: int,
        stream: bool,
        duration_s: float | None = None,
        total: int | None = None,
        tokens_per_stream: int = 0,
        opened_per_s: int | None = None,
    ) -> LoadRun: ...

    async def cancel_probe(self, stop: asyncio.Event) -> CancelProbe: ...

    async def gap_probe(self, row: StreamRow) -> Gaps: ...


def _zero() -> float:
    return 0.0


class SdkDriver:
    """The `openai` SDK (AsyncOpenAI) in one process against `base_url`. It starts all
    `concurrency` calls at once: `opened_per_s` (the held-streams row, run through ghz
    only) is not taken."""

    def __init__(
        self,
        base_url: str,
        model: str,
        out: Path,
        *,
        api_key: str = "bench-not-a-key",
        server_cpu_s: Callable[[], float] = _zero,
        http: str = "httpx",
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._model = model
        self._out = out
        self._api_key = api_key
        self._server_cpu_s = server_cpu_s

    def run(
        self,
        name: str,
        *,
        prompt: str,
        concurrency: int,
        stream: bool,
        duration_s: float | None = None,
        total: int | None = None,
        tokens_per_stream: int = 0,
        opened_per_s: int | None = None,
    ) -> LoadRun:
        out = self._out / f"{name}.json"
        command = [sys.executable, "-m", "bench.sdk_load", "--name", name]
        command += ["--base-url", self._base_url, "--model", self._model, "--prompt", prompt]
        command += ["--concurrency", str(concurrency), "--out", str(out), "--http", self._http]
        command += ["--stream"] if stream else []
        command += ["--duration", f"{duration_s:g}"] if duration_s else []
        command += ["--total", str(total)] if total else []
        cpu = self._server_cpu_s()
        result = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, "BENCH_API_KEY": self._api_key},
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if result.returncode != 0:
            raise RuntimeError(f"sdk_load {name} failed: {result.stderr[-2000:]}")
        run = LoadRun.load(out)
        return LoadRun(
            name=run.name,
            concurrency=run.concurrency,
            calls=run.calls,
            wall_s=run.wall_s,
            chunks=run.chunks,
            server_cpu_s=self._server_cpu_s() - cpu,
        )

    async def cancel_probe(self, stop: asyncio.Event) -> CancelProbe:
        return await probe_sdk(self._base_url, self._model, self._api_key, stop)

    async def gap_probe(self, row: StreamRow) -> Gaps:
        return await gaps_sse(self._base_url, self._model, self._api_key, row)


class GhzDriver:
    """ghz against modelrouter's `Generate` / `GenerateStream`."""

    def __init__(
        self, target: str, model: str, out: Path, *, server_cpu_s: Callable[[], float] = _zero
    ) -> None:
        self._target = target
        self._model = model
        self._out = out
        self._server_cpu_s = server_cpu_s

    def run(
        self,
        name: str,
        *,
        prompt: str,
        concurrency: int,
        stream: bool,
        duration_s: float | None = None,
        total: int | None = None,
        tokens_per_stream: int = 0,
        opened_per_s: int | None = None,
    ) -> LoadRun:
        data = {
            "model": self._model,
            "messages": [{"role": "ROLE_USER", "content": prompt}],
        }
        # Workers of a multi-process router share the port by connection (SO_REUSEPORT,
        # which spreads them by a hash): with 8 connections for 16 calls one run put
        # nearly all of them on one of 2 workers (1.06 cores used, against 1.60 in the
        # next run). One connection per call in flight, as the SDK's pool opens, up to 100.
        connections = min(concurrency, 100)
        cpu = self._server_cpu_s()
        run = run_ghz(
            name,
            self._target,
            method="GenerateStream" if stream else "Generate",
            data=data,
            concurrency=concurrency,
            connections=connections,
            total=total,
            duration_s=duration_s,
            rps=opened_per_s,
            timeout_s=120.0,
            save_to=self._out / f"ghz_{name}.json",
        )
        return from_ghz(
            run, tokens_per_stream=tokens_per_stream, server_cpu_s=self._server_cpu_s() - cpu
        )

    async def cancel_probe(self, stop: asyncio.Event) -> CancelProbe:
        return await probe_router(self._target, self._model, stop)

    async def gap_probe(self, row: StreamRow) -> Gaps:
        return await gaps_router(self._target, self._model, row)
