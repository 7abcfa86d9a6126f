"""`python -m bench [--out DIR] [--quick]`: run every benchmark and write the report.

The emulator runs as its own process and `modelrouter serve` points its providers at it,
so the router's process does only the router's work. Steps: ghz unary load; SDK-direct
against router latency; a burst of 1,000 concurrent streams while a probe times first
tokens and the router's in-flight gauge is sampled; a stream relay-capacity run; then the
plots and REPORT.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import RouterProcess, start_router, stop_router

from bench import plots
from bench.emulator_process import EmulatorProcess, start_emulator, stop_emulator
from bench.ghz import GHZ, GhzRun, run_ghz
from bench.machine import describe_machine, process_cpu_s
from bench.probes import (
    LoadProbe,
    OverheadSamples,
    measure_overhead,
    probe_ttft_until,
    sample_gauge_until,
)
from bench.report import BenchResults, Phase, render
from bench.settings import BenchSettings, StreamLoad

ROOT = Path(__file__).resolve().parents[1]
HELLO = {"messages": [{"role": "ROLE_USER", "content": "Hello"}]}
LOAD_MODEL = "gpt-4o-mini-2024-07-18"
PROBE_MODEL = "claude-3-7-sonnet-20250219"

T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _timed(router: RouterProcess, action: Callable[[], T]) -> tuple[T, float, float]:
    """Run `action`; returns its result, the wall seconds and the router's CPU seconds."""
    cpu = process_cpu_s(router.process.pid)
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started, process_cpu_s(router.process.pid) - cpu


def _stream_ghz(router: RouterProcess, name: str, load: StreamLoad, out: Path) -> GhzRun:
    return run_ghz(
        name,
        router.target,
        method="GenerateStream",
        data={**HELLO, "model": LOAD_MODEL, "max_output_tokens": load.tokens},
        concurrency=load.concurrency,
        connections=load.connections,
        total=load.total,
        duration_s=load.duration_s,
        timeout_s=120.0,
        save_to=out / f"ghz_{name}.json",
    )


async def _burst_with_probes(
    router: RouterProcess, load: StreamLoad, out: Path
) -> tuple[GhzRun, LoadProbe, list[tuple[float, float]]]:
    stop = asyncio.Event()
    probe_task = asyncio.create_task(probe_ttft_until(router.target, PROBE_MODEL, stop))
    gauge_task = asyncio.create_task(
        sample_gauge_until(router.scrape_metrics, "modelrouter_inflight_streams", stop)
    )
    try:
        run = await asyncio.to_thread(_stream_ghz, router, "burst", load, out)
    finally:
        stop.set()
    return run, await probe_task, await gauge_task


def max_open(run: GhzRun) -> int:
    """The most calls open at once, from each call's start and end."""
    events = sorted([(c.start_s, 1) for c in run.calls] + [(c.end_s, -1) for c in run.calls])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def _router_counters(router: RouterProcess) -> list[str]:
    try:
        text = router.scrape_metrics()
    except OSError:
        return []
    return [line for line in text.splitlines() if line.startswith("modelrouter_requests_total")]


def _script_load(emulator: EmulatorProcess, load: StreamLoad) -> None:
    emulator_admin.set_behavior(
        emulator.base_url,
        {"tokens_per_second": load.tokens_per_second, "output_tokens": load.tokens},
        model=LOAD_MODEL,
    )


@dataclasses.dataclass(frozen=True)
class _Measured:
    """Everything measured against the running router, before plotting."""

    unary: Phase
    overhead: OverheadSamples
    burst: Phase
    probe: LoadProbe
    inflight: list[tuple[float, float]]
    relay: Phase
    counters: list[str]


def run(out: Path, settings: BenchSettings) -> Path:
    """Run the benchmarks; returns the report's path."""
    started = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    emulator = start_emulator(out / "emulator.log")
    # The default pool (200 connections per provider) would hold most of the concurrent
    # streams back before they reach the emulator; an operator expecting this load sizes it.
    connections = max(settings.burst.concurrency, settings.relay.concurrency) + 100
    try:
        router = start_router(
            out / "router",
            metrics=True,
            emulator_url=emulator.base_url,
            provider_connections=connections,
        )
    except BaseException:
        stop_emulator(emulator)
        raise
    try:
        log(f"router at {router.target}, emulator at {emulator.base_url} (own process)")
        measured = _measure(router, emulator, settings, out)
    finally:
        stop_router(router)
        stop_emulator(emulator)

    log("plotting")
    results = BenchResults(
        machine=describe_machine(ROOT),
        settings=settings,
        unary=measured.unary,
        burst=measured.burst,
        relay=measured.relay,
        burst_max_open=max_open(measured.burst.run),
        burst_max_router_inflight=max((v for _, v in measured.inflight), default=None),
        burst_probe=measured.probe,
        overhead=measured.overhead,
        router_counters=measured.counters,
        figures=_figures(measured, settings, out),
        elapsed_s=time.monotonic() - started,
    )
    report = out / "REPORT.md"
    report.write_text(render(results, out), encoding="utf-8")
    log(f"report: {report} ({results.elapsed_s:.0f} s)")
    return report


def _measure(
    router: RouterProcess, emulator: EmulatorProcess, settings: BenchSettings, out: Path
) -> _Measured:
    """Warm-up, then each phase in turn: unary, overhead, burst, relay."""
    log("warm-up: 200 unary calls")
    run_ghz("warmup", router.target, method="Generate", data=HELLO, concurrency=20, total=200)

    log(f"unary: concurrency {settings.unary_concurrency} for {settings.unary_duration_s:g} s")
    unary = Phase(
        *_timed(
            router,
            lambda: run_ghz(
                "unary",
                router.target,
                method="Generate",
                data=HELLO,
                concurrency=settings.unary_concurrency,
                duration_s=settings.unary_duration_s,
                save_to=out / "ghz_unary.json",
            ),
        )
    )
    log(f"unary: {unary.run.rps:.0f} calls/s, {unary.run.ok}/{unary.run.count} OK")

    log(f"overhead: {settings.overhead_calls} calls per path, SDK direct vs router")
    overhead = asyncio.run(
        measure_overhead(router.target, emulator.openai_base_url, calls=settings.overhead_calls)
    )

    burst_load = settings.burst
    _script_load(emulator, burst_load)
    log(
        f"burst: {burst_load.total} streams at concurrency {burst_load.concurrency}, "
        f"ideal {burst_load.ideal_s:.1f} s each"
    )
    (burst_run, probe, inflight), wall, cpu = _timed(
        router, lambda: asyncio.run(_burst_with_probes(router, burst_load, out))
    )
    log(f"burst: {burst_run.ok}/{burst_run.count} OK, peak open {max_open(burst_run)}")

    relay_load = settings.relay
    _script_load(emulator, relay_load)
    log(f"relay: concurrency {relay_load.concurrency} for {relay_load.duration_s:g} s")
    relay = Phase(*_timed(router, lambda: _stream_ghz(router, "relay", relay_load, out)))
    log(f"relay: {relay.run.ok}/{relay.run.count} OK")
    return _Measured(
        unary=unary,
        overhead=overhead,
        burst=Phase(burst_run, wall, cpu),
        probe=probe,
        inflight=inflight,
        relay=relay,
        counters=_router_counters(router),
    )


def _figures(measured: _Measured, settings: BenchSettings, out: Path) -> dict[str, Path]:
    """The report's plots, by the key `render` links them with."""
    unary, burst, relay, overhead = (
        measured.unary,
        measured.burst,
        measured.relay,
        measured.overhead,
    )
    return {
        "unary_latency": plots.latency_histogram(
            unary.run.calls, "Generate latency (ghz)", out / "unary_latency.png"
        ),
        "unary_throughput": plots.throughput_over_time(
            unary.run.calls, "Generate throughput", out / "unary_throughput.png"
        ),
        "burst_open": plots.open_streams_over_time(
            burst.run.calls,
            f"{settings.burst.concurrency} streams opened at once",
            out / "burst_open.png",
            server_inflight=measured.inflight,
        ),
        "burst_latency": plots.latency_histogram(
            burst.run.calls, "GenerateStream duration, burst", out / "burst_latency.png"
        ),
        "relay_throughput": plots.throughput_over_time(
            relay.run.calls, "GenerateStream completions, relay run", out / "relay_throughput.png"
        ),
        "overhead": plots.cdf_comparison(
            {
                "unary latency": {
                    "SDK direct": overhead.unary_direct,
                    "via router": overhead.unary_router,
                },
                "time to first token": {
                    "SDK direct": overhead.ttft_direct,
                    "via router": overhead.ttft_router,
                },
            },
            "Router vs SDK direct (same emulator)",
            out / "overhead.png",
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--quick", action="store_true", help="a small run (checks the bench)")
    parser.add_argument(
        "--burst", type=int, default=None, metavar="N", help="streams opened at once"
    )
    args = parser.parse_args(argv)
    if not GHZ.exists():
        print(f"bench: {GHZ} not found: run 'make tools'", file=sys.stderr)
        return 2
    settings = BenchSettings.quick() if args.quick else BenchSettings()
    if args.burst:
        burst = dataclasses.replace(settings.burst, concurrency=args.burst, total=args.burst)
        settings = dataclasses.replace(settings, burst=burst)
    run(args.out, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
