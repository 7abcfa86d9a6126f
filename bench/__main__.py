"""`python -m bench [--out DIR] [--quick]`: modelrouter side by side with the `openai` SDK
called directly and with LiteLLM proxy, against one stand-in upstream; writes REPORT.md.

Every system calls the same stand-in (bench/standin.py, its own process): the direct SDK
and LiteLLM are driven by the same Python SDK client (bench/sdk_load.py), modelrouter by
ghz. Each system runs alone, in turn: warm-up, unary at each concurrency, 200-token
streams, paced streams for the gaps between tokens (a Python client for every system),
then 1,000 concurrent slow streams with a cancel probe beside them. Each router
(1 worker, N workers) then holds 10,000 open streams in a fresh process, for memory per
stream, and so does the floor under it: a bare grpc.aio relay (bench/relay_floor.py).
Plots and bench/out/REPORT.md last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import litellm_proxy, relay_floor, router_process
from bench.drivers import GhzDriver, SdkDriver
from bench.figures import draw_figures
from bench.ghz import GHZ
from bench.machine import describe_machine
from bench.report import render
from bench.results import FLOOR, BenchReport
from bench.rows import HoldResult, SystemResult, hold_streams, measure, warm_up
from bench.settings import BenchSettings
from bench.standin_process import StandInProcess, start_standin, stop_standin

ROOT = Path(__file__).resolve().parents[1]
MODEL = router_process.MODEL


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _raise_nofile() -> None:
    """ghz and the probes are children of this process: 10,000 streams need the descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _direct(
    standin: StandInProcess, settings: BenchSettings, out: Path, *, http: str
) -> SystemResult:
    """The SDK as most callers use it (httpx), or on the aiohttp transport it ships, which
    is what modelrouter's HTTP/1.1 calls run on: the second is unary and stream rows only."""
    if http == "httpx":
        result = SystemResult("direct", "openai SDK called directly")
    else:
        result = SystemResult("direct_aiohttp", "openai SDK called directly, aiohttp transport")
    log(result.label)
    driver = SdkDriver(standin.base_url, MODEL, _dir(out, result.key), http=http)
    measure(driver, settings, standin, result, log, burst=http == "httpx")
    return result


def _router(
    standin: StandInProcess, settings: BenchSettings, out: Path, workers: int
) -> SystemResult:
    key = "router1" if workers == 1 else "routerN"
    result = SystemResult(key, f"modelrouter, {workers} worker{'s' if workers > 1 else ''}")
    flag: int | None = workers
    if not router_process.supports_workers():
        if workers > 1:
            result.unavailable = "not available: `modelrouter serve --workers` is not in this build"
            log(f"{result.label}: {result.unavailable}")
            return result
        flag = None
    log(result.label)
    directory = _dir(out, key)
    router = router_process.start(directory / "main", standin.base_url, workers=flag)
    try:
        driver = GhzDriver(router.target, MODEL, directory, server_cpu_s=router.cpu_s)
        measure(driver, settings, standin, result, log)
    finally:
        router_process.stop(router)
    # A fresh process, so the memory the other rows left behind is not counted as free.
    router = router_process.start(directory / "hold", standin.base_url, workers=flag)
    try:
        driver = GhzDriver(router.target, MODEL, directory, server_cpu_s=router.cpu_s)
        warm_up(driver, settings)
        result.hold = _hold(driver, settings, standin, router.rss_bytes)
    finally:
        router_process.stop(router)
    return result


def _floor(standin: StandInProcess, settings: BenchSettings, out: Path) -> SystemResult:
    """The hold row on the least a Python relay on grpc.aio can be (streams only)."""
    result = SystemResult(FLOOR, "bare grpc.aio relay")
    log(result.label)
    directory = _dir(out, FLOOR)
    floor = relay_floor.start_floor(standin.base_url, directory / "relay.log")
    try:
        driver = GhzDriver(floor.target, MODEL, directory)
        warm_up(driver, settings, unary=False)
        result.hold = _hold(driver, settings, standin, floor.rss_bytes)
    finally:
        relay_floor.stop_floor(floor)
    return result


def _hold(
    driver: GhzDriver, settings: BenchSettings, standin: StandInProcess, rss: Callable[[], int]
) -> HoldResult:
    hold = asyncio.run(hold_streams(driver, settings.hold, standin, rss))
    log(
        f"  hold: {hold.run.ok}/{hold.run.count} OK, peak "
        f"{hold.peak_open} open, {hold.bytes_per_stream / 1024:.1f} KiB each"
    )
    return hold


def _litellm(standin: StandInProcess, settings: BenchSettings, out: Path) -> SystemResult:
    result = SystemResult("litellm", "LiteLLM proxy, 1 worker")
    try:
        proxy = litellm_proxy.start(_dir(out, "litellm"), standin.base_url)
    except litellm_proxy.LiteLLMUnavailable as exc:
        result.unavailable = f"LiteLLM {exc}"
        log(result.unavailable)
        return result
    result.label = f"LiteLLM proxy {proxy.version}, 1 worker"
    log(result.label)
    try:
        driver = SdkDriver(
            proxy.base_url,
            MODEL,
            _dir(out, "litellm"),
            api_key=proxy.master_key,
            server_cpu_s=proxy.cpu_s,
        )
        measure(driver, settings, standin, result, log)
    finally:
        litellm_proxy.stop(proxy)
    return result


def _dir(out: Path, name: str) -> Path:
    path = out / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _guarded(result_key: str, label: str, action: Callable[[], SystemResult]) -> SystemResult:
    """Run one system; a failure is reported in its column, and the others still run."""
    try:
        return action()
    except Exception as exc:
        log(f"{label} failed: {exc}")
        return SystemResult(result_key, label, unavailable=f"failed: {str(exc)[:300]}")


def run(out: Path, settings: BenchSettings) -> Path:
    """Run every system in turn; returns the report's path."""
    started = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _raise_nofile()
    machine = describe_machine(ROOT)
    cores = os.cpu_count() or 1
    standin = start_standin(out / "standin.log")
    try:
        log(f"stand-in upstream at {standin.base_url}")
        results = [
            _guarded("direct", "openai SDK", lambda: _direct(standin, settings, out, http="httpx")),
            _guarded(
                "direct_aiohttp",
                "openai SDK, aiohttp",
                lambda: _direct(standin, settings, out, http="aiohttp"),
            ),
            _guarded("router1", "modelrouter", lambda: _router(standin, settings, out, 1)),
            _guarded("routerN", "modelrouter", lambda: _router(standin, settings, out, cores)),
            _guarded(FLOOR, "bare grpc.aio relay", lambda: _floor(standin, settings, out)),
            _guarded("litellm", "LiteLLM", lambda: _litellm(standin, settings, out)),
        ]
        standin_cpu = standin.cpu_s()
    finally:
        stop_standin(standin)
    log("plotting")
    report = BenchReport(
        machine=machine,
        settings=settings,
        cores=cores,
        systems={r.key: r for r in results},
        standin_cpu_s=standin_cpu,
        elapsed_s=time.monotonic() - started,
        figures={},
    )
    report.figures.update(draw_figures(report, out))
    path = out / "REPORT.md"
    path.write_text(render(report, out), encoding="utf-8")
    log(f"report: {path} ({report.elapsed_s:.0f} s)")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--quick", action="store_true", help="a small run (checks the bench)")
    args = parser.parse_args(argv)
    if not GHZ.exists():
        print(f"bench: {GHZ} not found: run 'make tools'", file=sys.stderr)
        return 2
    run(args.out, BenchSettings.quick() if args.quick else BenchSettings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
