"""The Markdown report (bench/out/REPORT.md) from one run's results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.ghz import GhzRun
from bench.machine import Machine
from bench.probes import LoadProbe, OverheadSamples
from bench.settings import BenchSettings, StreamLoad
from bench.stats import Summary, ms


@dataclass(frozen=True)
class Phase:
    """One ghz load, with the wall time it took and the CPU the router used meanwhile."""

    run: GhzRun
    wall_s: float
    router_cpu_s: float

    @property
    def router_cores(self) -> float:
        return self.router_cpu_s / self.wall_s if self.wall_s else 0.0


@dataclass(frozen=True)
class BenchResults:
    machine: Machine
    settings: BenchSettings
    unary: Phase
    burst: Phase
    relay: Phase
    burst_max_open: int
    burst_max_router_inflight: float | None
    burst_probe: LoadProbe
    overhead: OverheadSamples
    router_counters: Sequence[str]
    figures: dict[str, Path]
    elapsed_s: float


def _summary(run: GhzRun) -> Summary:
    return Summary.of([c.latency_s for c in run.calls if c.status == "OK"])


def _row(label: str, summary: Summary) -> str:
    return (
        f"| {label} | {summary.count} | {ms(summary.p50)} | {ms(summary.p90)} "
        f"| {ms(summary.p99)} | {ms(summary.max)} |"
    )


def _errors(run: GhzRun) -> str:
    return ", ".join(f"{v} x {k}" for k, v in run.errors.items()) or "none"


def _stream_table(phase: Phase, load: StreamLoad) -> list[str]:
    run = phase.run
    tokens = load.tokens * run.ok
    return [
        "| streams | OK | errors | streams/s | tokens/s relayed | router CPU |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {run.count} | {run.ok} | {_errors(run)} | {run.rps:.1f} "
        f"| {tokens / phase.wall_s:.0f} | {phase.router_cores:.2f} cores |",
    ]


def render(results: BenchResults, out: Path) -> str:
    """The report as Markdown; figure links are relative to `out`."""

    def figure(key: str, alt: str) -> str:
        path = results.figures.get(key)
        return f"![{alt}]({path.relative_to(out)})" if path else ""

    lines = [
        *_header(results),
        *_unary_section(results, figure),
        *_overhead_section(results, figure),
        *_burst_section(results, figure),
        *_relay_section(results, figure),
        "## The router's own counters after the run",
        "",
        "```",
        *(results.router_counters or ["(the router exported no modelrouter_requests_total)"]),
        "```",
        "",
    ]
    return "\n".join(lines)


Figure = Callable[[str, str], str]
"""(figure key, alt text) -> the Markdown image link, or "" when the figure is missing."""


def _header(results: BenchResults) -> list[str]:
    return [
        "# modelrouter benchmark",
        "",
        "`modelrouter serve` (one process) with its providers pointed at the provider "
        "emulator (another process), driven by ghz and Python clients on the same machine. "
        "The load generators, the emulator and the router share the CPUs, so these "
        "figures are a floor for the router.",
        "",
        "| machine | |",
        "| --- | --- |",
        results.machine.markdown().rstrip(),
        f"| run time | {results.elapsed_s:.0f} s |",
        "",
    ]


def _unary_section(results: BenchResults, figure: Figure) -> list[str]:
    unary = results.unary
    u = _summary(unary.run)
    unary_cpu_ms = unary.router_cpu_s / max(unary.run.count, 1) * 1000
    return [
        "## Unary throughput and latency",
        "",
        f"ghz, `Generate` on `gpt-4o-mini` (the emulator answers at once with 24 tokens), "
        f"concurrency {unary.run.concurrency}, {results.settings.unary_duration_s:g} s.",
        "",
        "| calls | OK | errors | throughput | p50 ms | p90 ms | p99 ms | max ms | router CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {unary.run.count} | {unary.run.ok} | {_errors(unary.run)} "
        f"| {unary.run.rps:.0f} calls/s | {ms(u.p50)} | {ms(u.p90)} | {ms(u.p99)} "
        f"| {ms(u.max)} | {unary.router_cores:.2f} cores, {unary_cpu_ms:.1f} ms per call |",
        "",
        figure("unary_latency", "unary latency distribution"),
        figure("unary_throughput", "unary throughput over time"),
        "",
    ]


def _overhead_section(results: BenchResults, figure: Figure) -> list[str]:
    o = results.overhead
    rows = []
    for measure, direct, router in (
        ("unary call", o.unary_direct, o.unary_router),
        ("stream: time to first token", o.ttft_direct, o.ttft_router),
        ("stream: whole reply (24 tokens)", o.stream_direct, o.stream_router),
    ):
        d, r = Summary.of(direct), Summary.of(router)
        rows.append(
            f"| {measure} | {ms(d.p50)} / {ms(d.p99)} | {ms(r.p50)} / {ms(r.p99)} "
            f"| {ms(r.p50 - d.p50)} | {ms(r.p99 - d.p99)} |"
        )
    return [
        "## Latency the router adds",
        "",
        f"The same emulator called directly through the official `openai` SDK, and through "
        f"the router with the Python client: {len(o.unary_direct)} calls on each path, one "
        "at a time, alternating, after a warm-up. Same model, prompt and emulator behaviour "
        "(an immediate 24-token answer).",
        "",
        "| measure | SDK direct p50 / p99 ms | via router p50 / p99 ms | added p50 ms "
        "| added p99 ms |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        figure("overhead", "router vs direct latency CDFs"),
        "",
    ]


def _burst_section(results: BenchResults, figure: Figure) -> list[str]:
    burst, load = results.burst, results.settings.burst
    inflight = (
        f"{results.burst_max_router_inflight:.0f}"
        if results.burst_max_router_inflight is not None
        else "not exported"
    )
    return [
        f"## {load.concurrency:,} concurrent streams",
        "",
        f"ghz opens {load.total:,} `GenerateStream` calls at once (concurrency "
        f"{load.concurrency} over {load.connections} connections). Each answer is "
        f"{load.tokens} tokens at {load.tokens_per_second:g} tokens/s, "
        f"{load.ideal_s:.0f} s with no queueing, so every stream is still open when the "
        "last one starts. Each provider's connection pool is sized above the concurrency "
        "(`max_connections`; the default, 200, would hold the rest back).",
        "",
        *_stream_table(burst, load),
        "",
        "| most open at once (client) | most in flight (router's gauge) |",
        "| --- | --- |",
        f"| {results.burst_max_open} | {inflight} |",
        "",
        "| | n | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- |",
        _row(f"stream duration (ideal {load.ideal_s * 1000:.0f} ms)", _summary(burst.run)),
        _row(
            "time to first token of a probe stream opened during the burst",
            Summary.of(results.burst_probe.ttft),
        ),
        "",
        f"The probe opens one stream at a time on `claude-3-7-sonnet` (answered at once) "
        f"and cancels it at its first token; {results.burst_probe.failures} probe(s) failed.",
        "",
        figure("burst_open", "open streams over time"),
        figure("burst_latency", "stream duration distribution"),
        "",
    ]


def _relay_section(results: BenchResults, figure: Figure) -> list[str]:
    relay, load = results.relay, results.settings.relay
    return [
        "## Stream relay capacity",
        "",
        f"ghz keeps {load.concurrency} `GenerateStream` calls open for "
        f"{load.duration_s:g} s; each answer is {load.tokens} tokens at "
        f"{load.tokens_per_second:g} tokens/s ({load.ideal_s:.1f} s with no "
        "queueing). Tokens relayed per second at this load show what one router process "
        "sustains.",
        "",
        *_stream_table(relay, load),
        "",
        "| | n | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- |",
        _row(f"stream duration (ideal {load.ideal_s * 1000:.0f} ms)", _summary(relay.run)),
        "",
        figure("relay_throughput", "relay completions over time"),
        "",
    ]
