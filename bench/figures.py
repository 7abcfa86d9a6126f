"""The report's figures from one run's results (the drawing itself is in bench/plots.py)."""

from __future__ import annotations

from pathlib import Path

from bench import plots
from bench.results import FLOOR, SYSTEMS, BenchReport


def draw_figures(report: BenchReport, out: Path) -> dict[str, Path]:
    """Every figure that has data, by the key the report links it with."""
    systems = [s for k in SYSTEMS if not (s := report.system(k)).unavailable]
    figures: dict[str, Path] = {}
    rates = {s.label: {c: r.rate for c, r in s.unary.items()} for s in systems if s.unary}
    if rates:
        figures["unary_rates"] = plots.grouped_bars(
            rates, "unary calls/s by concurrency", "calls/s", out / "unary_rates.png"
        )
    c1 = {s.label: [c.latency_s for c in s.unary[1].calls] for s in systems if 1 in s.unary}
    if c1:
        figures["unary_c1"] = plots.cdf_comparison(
            {"unary latency, concurrency 1": c1}, "Unary latency", out / "unary_c1.png"
        )
    gaps = {s.label: s.gaps.gaps_s for s in systems if s.gaps and s.gaps.gaps_s}
    if gaps:
        figures["gaps"] = plots.cdf_comparison(
            {"gap between tokens": gaps}, "Paced streams", out / "gaps.png"
        )
    burst = {s.label: [c.latency_s for c in s.burst.calls] for s in systems if s.burst}
    if burst:
        figures["burst"] = plots.cdf_comparison(
            {"stream completion": burst},
            f"{report.settings.burst.total:,} slow streams at once",
            out / "burst.png",
        )
    cancel = {s.label: s.cancel.delays_s for s in systems if s.cancel and s.cancel.delays_s}
    if cancel:
        figures["cancel"] = plots.cdf_comparison(
            {"cancel -> upstream closed": cancel}, "Client cancel", out / "cancel.png"
        )
    holds = {
        s.label: [(x.at_s, x.open_upstream, x.rss_bytes) for x in s.hold.samples]
        for s in [*systems, report.system(FLOOR)]
        if s.hold
    }
    if holds:
        figures["hold"] = plots.hold_over_time(holds, out / "hold.png")
    return figures
