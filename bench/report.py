"""bench/out/REPORT.md: issue 13's table, with each target beside the figures and the
ratios of modelrouter to the direct SDK and to LiteLLM, then the details and plots."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from bench.gap_probe import Gaps
from bench.loadrun import LoadRun
from bench.report_details import details, header
from bench.results import FLOOR, SYSTEMS, BenchReport
from bench.rows import CancelResult, HoldResult, SystemResult
from bench.stats import Summary

# Issue 13's baseline: modelrouter relayed ~5,200 tokens/s on one core (one process).
BASELINE_TOKENS_PER_CORE = 5200.0


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def _s(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds:.1f} s"


def _ratio(a: float, b: float, style: str = "%") -> str:
    if not b or math.isnan(a) or math.isnan(b) or a == 0:
        return "-"
    return f"{a / b:.0%}" if style == "%" else f"{a / b:.1f}x"


def _unary_cell(run: LoadRun, with_p50: bool) -> str:
    lat = run.latency
    text = f"{run.rate:,.0f} calls/s"
    if with_p50:
        text += f", p50 {_ms(lat.p50)}"
    text += f", p99 {_ms(lat.p99)}"
    return text + _failed(run)


def _failed(run: LoadRun) -> str:
    failed = run.count - run.ok
    return f" ({failed:,} failed)" if failed else ""


def _stream_cell(run: LoadRun, cores: float | None) -> str:
    text = f"{run.rate:,.1f} streams/s ({run.chunk_rate:,.0f} chunks/s)"
    if cores:
        text += f", {run.chunks / cores:,.0f} tokens/s per core used"
    return text + _failed(run)


def _gaps_cell(gaps: Gaps) -> str:
    summary = Summary.of(gaps.gaps_s)
    text = f"p50 {_ms(summary.p50)}, p99 {_ms(summary.p99)} ({summary.count:,} gaps)"
    return text + (f" ({gaps.failures} streams failed)" if gaps.failures else "")


def _burst_cell(run: LoadRun, ideal_s: float) -> str:
    lat = run.latency
    return (
        f"{run.ok:,}/{run.count:,} OK; p50 {_s(lat.p50)} ({lat.p50 / ideal_s:.2f}x ideal), "
        f"p99 {_s(lat.p99)} ({lat.p99 / ideal_s:.2f}x)"
    )


def _cancel_cell(cancel: CancelResult) -> str:
    summary = Summary.of(cancel.delays_s)
    text = f"p50 {_ms(summary.p50)}, p99 {_ms(summary.p99)} (n={summary.count})"
    if cancel.not_closed:
        text += f", {cancel.not_closed} never closed"
    return text


def _hold_cell(hold: HoldResult) -> str:
    return (
        f"{hold.run.ok:,}/{hold.run.count:,} OK, {hold.peak_open:,} open upstream at "
        f"peak; {hold.bytes_per_stream / 1024:.1f} KiB RSS per open stream"
    )


Cell = Callable[[SystemResult], str | None]


def _cells(report: BenchReport, cell: Cell) -> list[str]:
    out = []
    for key in SYSTEMS:
        system = report.system(key)
        if system.unavailable:
            out.append("not available" if key == "routerN" else "n/a")
            continue
        out.append(cell(system) or "")
    return out


def _unary_row(report: BenchReport, concurrency: int) -> list[str]:
    def cell(s: SystemResult) -> str | None:
        run = s.unary.get(concurrency)
        return _unary_cell(run, concurrency == 1) if run else None

    runs = {k: report.system(k).unary.get(concurrency) for k in SYSTEMS}
    rate = {k: r.rate if r else math.nan for k, r in runs.items()}
    direct, one = runs["direct"], runs["router1"]
    if concurrency == 1:
        target = "added p50 <= 0.5 ms, p99 <= 2 ms over direct"
        added = ""
        if direct and one:
            added = (
                f"; 1w added p50 {_ms(one.latency.p50 - direct.latency.p50)}, "
                f"p99 {_ms(one.latency.p99 - direct.latency.p99)}"
            )
        met = _met(
            direct is not None
            and one is not None
            and one.latency.p50 - direct.latency.p50 <= 0.0005
            and one.latency.p99 - direct.latency.p99 <= 0.002
        )
    else:
        target = "1w >= 75%, Nw >= 100% of direct; 1w >= 5x LiteLLM"
        added = ""
        met = _met(
            rate["router1"] >= 0.75 * rate["direct"]
            and rate["routerN"] >= rate["direct"]
            and rate["router1"] >= 5 * rate["litellm"]
        )
    ratios = _ratios(rate) + added
    return [f"unary, concurrency {concurrency}", target, *_cells(report, cell), ratios, met]


def _ratios(value: dict[str, float], style: str = "%") -> str:
    parts = [
        f"1w/direct {_ratio(value['router1'], value['direct'], style)}",
        f"Nw/direct {_ratio(value['routerN'], value['direct'], style)}",
    ]
    if not math.isnan(value["direct_aiohttp"]):
        parts.append(f"Nw/direct on aiohttp {_ratio(value['routerN'], value['direct_aiohttp'])}")
    parts.append(f"1w/LiteLLM {_ratio(value['router1'], value['litellm'], 'x')}")
    return ", ".join(parts)


def _met(ok: bool) -> str:
    return "yes" if ok else "no"


def _stream_row(report: BenchReport) -> list[str]:
    row = report.settings.stream

    def cell(s: SystemResult) -> str | None:
        if s.stream is None:
            return None
        cores = s.stream.server_cpu_s if s.key.startswith("router") else None
        return _stream_cell(s.stream, cores)

    runs = {k: report.system(k).stream for k in SYSTEMS}
    rate = {k: r.rate if r else math.nan for k, r in runs.items()}
    target_per_core = 3 * BASELINE_TOKENS_PER_CORE
    per_core = [
        r.chunks / r.server_cpu_s
        for k, r in runs.items()
        if r and k.startswith("router") and r.server_cpu_s
    ]
    return [
        f"streams of {row.tokens} tokens, concurrency {row.concurrency}",
        f"relayed tokens/s per core >= {target_per_core:,.0f} (3x issue baseline)",
        *_cells(report, cell),
        _ratios(rate),
        _met(bool(per_core) and min(per_core) >= target_per_core),
    ]


def _gaps_row(report: BenchReport) -> list[str]:
    row = report.settings.paced

    def cell(s: SystemResult) -> str | None:
        return _gaps_cell(s.gaps) if s.gaps else None

    p99 = {
        k: Summary.of(g.gaps_s).p99 if (g := report.system(k).gaps) else math.nan for k in SYSTEMS
    }
    added = {k: p99[k] - p99["direct"] for k in ("router1", "routerN", "litellm")}
    # Every router counts, a failed one too; only a build without workers has no Nw.
    routers = {
        k: report.system(k).gaps
        for k in ("router1", "routerN")
        if not report.system(k).unavailable.startswith("not available")
    }
    met = all(g is not None and not g.failures and added[k] <= 0.002 for k, g in routers.items())
    return [
        f"gaps between tokens, {row.concurrency} streams at a time of {row.tokens} tokens, "
        f"a token every {row.delay_ms:g} ms",
        "added p99 <= 2 ms over the stand-in called directly (each read by a lean client)",
        *_cells(report, cell),
        f"added p99: 1w {_ms(added['router1'])}, Nw {_ms(added['routerN'])}, "
        f"LiteLLM {_ms(added['litellm'])}",
        _met(met),
    ]


def _burst_row(report: BenchReport) -> list[str]:
    row = report.settings.burst

    def cell(s: SystemResult) -> str | None:
        return _burst_cell(s.burst, row.ideal_s) if s.burst else None

    p99 = {k: (b.latency.p99 if (b := report.system(k).burst) else math.nan) for k in SYSTEMS}
    routers = [report.system(k) for k in ("router1", "routerN")]
    bursts = [r.burst for r in routers if not r.unavailable]
    met = bool(bursts) and all(
        b is not None and b.ok == b.count and b.latency.p99 <= 1.1 * row.ideal_s for b in bursts
    )
    return [
        f"{row.total:,} concurrent streams of {row.tokens} tokens at "
        f"{1000 / row.delay_ms:g} token/s (ideal {row.ideal_s:g} s)",
        f"all OK, p99 <= {1.1 * row.ideal_s:g} s (ideal + 10%)",
        *_cells(report, cell),
        "p99 " + _ratios(p99, style="x"),
        _met(met),
    ]


def _hold_row(report: BenchReport) -> list[str]:
    row = report.settings.hold

    def cell(s: SystemResult) -> str | None:
        if not s.key.startswith("router"):
            return "not measured"
        return _hold_cell(s.hold) if s.hold else s.hold_unavailable or None

    holds = {k: h for k in ("router1", "routerN") if (h := report.system(k).hold)}
    met = bool(holds) and all(
        h.run.ok == row.total and h.bytes_per_stream <= 30 * 1024 for h in holds.values()
    )
    return [
        f"{row.total:,} concurrent open streams, slow upstream",
        "all held; <= 30 KB RSS per open stream",
        *_cells(report, cell),
        _floor_cell(report, holds),
        _met(met),
    ]


def _floor_cell(report: BenchReport, holds: dict[str, HoldResult]) -> str:
    """The routers' memory per stream over that of a bare grpc.aio relay."""
    floor = report.system(FLOOR)
    if floor.hold is None:
        return "floor n/a"  # why: in the notes above the table
    per_stream = floor.hold.bytes_per_stream
    if math.isnan(per_stream):
        return "floor: no stream was seen open"
    text = f"floor (bare grpc.aio relay) {per_stream / 1024:.1f} KiB"
    if floor.hold.run.ok < floor.hold.run.count:
        text += f" ({floor.hold.run.count - floor.hold.run.ok:,} failed)"
    added = [
        f"{'1w' if k == 'router1' else f'{report.cores}w'} "
        f"{(h.bytes_per_stream - per_stream) / 1024:+.1f} KiB"
        for k, h in holds.items()
    ]
    return "; ".join([text, *added])


def _cancel_row(report: BenchReport) -> list[str]:
    def cell(s: SystemResult) -> str | None:
        return _cancel_cell(s.cancel) if s.cancel else None

    p99 = [
        Summary.of(c.delays_s).p99
        for k in ("router1", "routerN")
        if (c := report.system(k).cancel) is not None
    ]
    return [
        f"client cancel -> upstream closed, under the {report.settings.burst.total:,}-stream load",
        "p99 <= 20 ms",
        *_cells(report, cell),
        "",
        _met(bool(p99) and all(p <= 0.020 for p in p99)),
    ]


def _table(report: BenchReport) -> list[str]:
    heads = [report.system(k).label for k in SYSTEMS]
    heads[SYSTEMS.index("routerN")] = f"modelrouter, {report.cores} workers"
    rows = [
        *(_unary_row(report, c) for c in report.settings.unary_concurrency),
        _stream_row(report),
        _gaps_row(report),
        _burst_row(report),
        _hold_row(report),
        _cancel_row(report),
    ]
    lines = [
        "| measure | target | " + " | ".join(heads) + " | ratios | target met |",
        "|" + " --- |" * (len(heads) + 4),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def render(report: BenchReport, out: Path) -> str:
    """The report as Markdown; figure links are relative to `out`."""
    return "\n".join([*header(report), *_table(report), "", *details(report, out), ""])
