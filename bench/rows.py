"""The table's rows, measured for one system at a time with its driver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.drivers import Driver
from bench.gap_probe import Gaps
from bench.loadrun import LoadRun
from bench.settings import BenchSettings, StreamRow
from bench.standin_process import StandInProcess

Log = Callable[[str], None]


@dataclass(frozen=True)
class CancelResult:
    """Seconds from each client cancel to the upstream connection's close."""

    delays_s: list[float]
    not_closed: int
    """Cancelled streams whose upstream connection the stand-in never saw close."""
    failures: int


@dataclass(frozen=True)
class HoldSample:
    at_s: float
    open_upstream: int
    rss_bytes: int


@dataclass(frozen=True)
class HoldResult:
    """Many streams held open on a slow upstream, and what they cost in memory."""

    run: LoadRun
    baseline_rss_bytes: int
    samples: list[HoldSample]

    @property
    def peak_open(self) -> int:
        return max((s.open_upstream for s in self.samples), default=0)

    @property
    def peak_rss_bytes(self) -> int:
        return max((s.rss_bytes for s in self.samples), default=self.baseline_rss_bytes)

    @property
    def bytes_per_stream(self) -> float:
        """Resident memory added per open stream, at the most streams open at once."""
        if not self.peak_open:
            return float("nan")
        return (self.peak_rss_bytes - self.baseline_rss_bytes) / self.peak_open


@dataclass
class SystemResult:
    key: str
    label: str
    unavailable: str = ""
    """Why this system was not measured ("" when it was)."""
    note: str = ""
    unary: dict[int, LoadRun] = field(default_factory=dict)
    stream: LoadRun | None = None
    gaps: Gaps | None = None
    burst: LoadRun | None = None
    cancel: CancelResult | None = None
    hold: HoldResult | None = None
    hold_unavailable: str = ""


def warm_up(driver: Driver, settings: BenchSettings, *, unary: bool = True) -> None:
    """Connections opened, code paths taken once, before anything is timed."""
    if unary:
        prompt = f"tokens={settings.unary_tokens}"
        driver.run(
            "warmup", prompt=prompt, concurrency=16, stream=False, total=settings.warmup_calls
        )
    driver.run("warmup_stream", prompt="tokens=20", concurrency=4, stream=True, total=20)


def measure(
    driver: Driver,
    settings: BenchSettings,
    standin: StandInProcess,
    result: SystemResult,
    log: Log,
    *,
    burst: bool = True,
) -> None:
    """Warm-up, then the unary rows, the stream row and (unless not `burst`) the paced
    streams' gaps and the burst with the cancel probe, filling `result` as they finish."""
    warm_up(driver, settings)
    prompt = f"tokens={settings.unary_tokens}"
    for concurrency in settings.unary_concurrency:
        run = driver.run(
            f"unary_c{concurrency}",
            prompt=prompt,
            concurrency=concurrency,
            stream=False,
            duration_s=settings.unary_duration_s,
        )
        result.unary[concurrency] = run
        log(f"  unary c{concurrency}: {run.rate:.0f} calls/s, {run.ok}/{run.count} OK")
    row = settings.stream
    result.stream = run_streams(driver, "stream", row)
    log(f"  streams c{row.concurrency}: {result.stream.rate:.1f} streams/s")
    if not burst:
        return
    result.gaps = asyncio.run(driver.gap_probe(settings.paced))
    log(f"  paced streams: {result.gaps.streams} read, {len(result.gaps.gaps_s):,} gaps")
    result.burst, result.cancel = asyncio.run(burst_with_cancels(driver, settings.burst, standin))
    log(
        f"  burst: {result.burst.ok}/{result.burst.count} OK, "
        f"cancel probes {len(result.cancel.delays_s)}"
    )


def run_streams(driver: Driver, name: str, row: StreamRow) -> LoadRun:
    return driver.run(
        name,
        prompt=row.prompt,
        concurrency=row.concurrency,
        stream=True,
        duration_s=row.duration_s,
        total=row.total,
        tokens_per_stream=row.tokens,
        opened_per_s=row.opened_per_s,
    )


async def burst_with_cancels(
    driver: Driver, row: StreamRow, standin: StandInProcess
) -> tuple[LoadRun, CancelResult]:
    """The burst, with the cancel probe running beside it from start to end."""
    await asyncio.to_thread(standin.reset)
    stop = asyncio.Event()
    probe_task = asyncio.create_task(driver.cancel_probe(stop))
    try:
        run = await asyncio.to_thread(run_streams, driver, "burst", row)
    finally:
        stop.set()
    probe = await probe_task
    # The last cancels' closes may still be on their way.
    await asyncio.sleep(0.5)
    stats = await asyncio.to_thread(standin.stats)
    delays, not_closed = probe.delays(stats["disconnects"])
    return run, CancelResult(delays, not_closed, probe.failures)


async def _sample_until(
    done: asyncio.Event, standin: StandInProcess, rss: Callable[[], int], interval_s: float
) -> list[HoldSample]:
    samples: list[HoldSample] = []
    started = time.monotonic()
    while not done.is_set():
        stats = await asyncio.to_thread(standin.stats)
        samples.append(HoldSample(time.monotonic() - started, int(stats["open_streams"]), rss()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=interval_s)
    return samples


async def hold_streams(
    driver: Driver, row: StreamRow, standin: StandInProcess, rss: Callable[[], int]
) -> HoldResult:
    """Open `row.total` slow streams at once; sample the upstream's open count and the
    server's memory until they have all ended."""
    await asyncio.to_thread(standin.reset)
    baseline = rss()
    done = asyncio.Event()
    sampler = asyncio.create_task(_sample_until(done, standin, rss, 0.5))
    try:
        run = await asyncio.to_thread(run_streams, driver, "hold", row)
    finally:
        done.set()
    return HoldResult(run=run, baseline_rss_bytes=baseline, samples=await sampler)
