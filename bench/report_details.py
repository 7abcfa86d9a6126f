"""REPORT.md around the table: what ran where, then each row's details and the plots."""

from __future__ import annotations

from pathlib import Path

from bench.loadrun import LoadRun
from bench.results import FLOOR, SYSTEMS, BenchReport


def header(report: BenchReport) -> list[str]:
    s = report.settings
    systems = [report.system(k) for k in (*SYSTEMS, FLOOR)]
    notes = [f"- {r.label}: {r.unavailable}" for r in systems if r.unavailable]
    return [
        "# modelrouter side by side: the openai SDK, modelrouter, LiteLLM",
        "",
        "One run of `make bench`. Every system calls the same stand-in upstream "
        "(`bench/standin.py`, an OpenAI-compatible asyncio server in its own process), one "
        "system at a time. The direct SDK and LiteLLM are driven by the same Python client "
        "(`openai.AsyncOpenAI` in one process, `bench/sdk_load.py`); modelrouter by ghz over "
        "gRPC. The SDK is measured twice: on its default HTTP client (httpx, the baseline of "
        "the targets) and on the aiohttp transport it ships (`openai.DefaultAioHttpClient`), "
        "which modelrouter's own HTTP/1.1 calls to providers run on. Clients, stand-in and "
        "system under test share the machine's cores, so every "
        "figure is a floor; compare them side by side, as ratios.",
        "",
        "| machine | |",
        "| --- | --- |",
        report.machine.markdown().rstrip(),
        f"| run time | {report.elapsed_s:.0f} s (stand-in used {report.standin_cpu_s:.1f} "
        "CPU s in all) |",
        "",
        f"Loads: unary calls ask for {s.unary_tokens} tokens, {s.unary_duration_s:g} s per "
        f"concurrency after {s.warmup_calls} warm-up calls; streams are paced by the "
        "stand-in (a token every `delay` ms; 0: the whole answer at once). `1w`, `Nw`: "
        "modelrouter with 1 and N worker processes. Targets are issue 13's.",
        "",
        *(["Not measured:", "", *notes, ""] if notes else []),
    ]


def _latency_rows(label: str, run: LoadRun) -> str:
    lat = run.latency
    return (
        f"| {label} | {run.count:,} | {run.ok:,} | {run.rate:,.1f} | {lat.p50 * 1000:.2f} "
        f"| {lat.p90 * 1000:.2f} | {lat.p99 * 1000:.2f} | {lat.max * 1000:.2f} "
        f"| {_cores(run)} |"
    )


def _cores(run: LoadRun) -> str:
    if not run.server_cpu_s:
        return "-"
    return f"{run.server_cpu_s / run.wall_s:.2f}"


def _runs_table(report: BenchReport) -> list[str]:
    lines = [
        "| system, load | calls | OK | per s | p50 ms | p90 ms | p99 ms | max ms "
        "| server cores used |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key in (*SYSTEMS, FLOOR):
        system = report.system(key)
        runs: list[tuple[str, LoadRun]] = [
            (f"unary c{c}", r) for c, r in sorted(system.unary.items())
        ]
        if system.stream:
            runs.append((f"streams c{system.stream.concurrency}", system.stream))
        if system.burst:
            runs.append((f"{system.burst.count:,} slow streams", system.burst))
        if system.hold:
            runs.append((f"{system.hold.run.count:,} held streams", system.hold.run))
        lines += [_latency_rows(f"{system.label}, {name}", run) for name, run in runs]
    return lines


def _errors(report: BenchReport) -> list[str]:
    lines = []
    for key in (*SYSTEMS, FLOOR):
        system = report.system(key)
        runs = [*system.unary.values(), system.stream, system.burst]
        runs.append(system.hold.run if system.hold else None)
        for run in runs:
            if run is None:
                continue
            for error, count in run.errors().items():
                lines.append(f"- {system.label}, {run.name}: {count} x `{error}`")
    return lines or ["- none"]


def _hold_details(report: BenchReport) -> list[str]:
    lines = []
    for key in ("router1", "routerN", FLOOR):
        hold = report.system(key).hold
        if hold is None:
            continue
        lines.append(
            f"- {report.system(key).label}: RSS {hold.baseline_rss_bytes / 2**20:.0f} MiB "
            f"before, {hold.peak_rss_bytes / 2**20:.0f} MiB at the peak of "
            f"{hold.peak_open:,} streams open upstream; "
            f"{hold.bytes_per_stream / 1024:.1f} KiB per stream"
        )
    return lines


def details(report: BenchReport, out: Path) -> list[str]:
    def figure(key: str, alt: str) -> str:
        path = report.figures.get(key)
        return f"![{alt}]({path.relative_to(out)})" if path else ""

    hold, paced = report.settings.hold, report.settings.paced
    cancel_counts = [
        f"{report.system(k).label}: {len(c.delays_s)} cancels, {c.failures} probe failures"
        for k in SYSTEMS
        if (c := report.system(k).cancel) is not None
    ]
    return [
        "## Every load",
        "",
        *_runs_table(report),
        "",
        "Errors:",
        "",
        *_errors(report),
        "",
        figure("unary_rates", "unary calls per second by system and concurrency"),
        figure("unary_c1", "unary latency at concurrency 1"),
        "",
        "## Gaps between tokens",
        "",
        f"{paced.total} streams, {paced.concurrency} at a time, of {paced.tokens} tokens "
        f"sent {paced.delay_ms:g} ms apart by the stand-in ({paced.prompt}), read by a "
        "lean Python client in the bench's process that notes when each token arrives: SSE "
        "lines over httpx for the OpenAI-compatible endpoints (the SDK's own parsing would "
        "add its cost to the baseline), `modelrouter_client` for modelrouter. The first "
        "token of each stream is left out (its wait is the stream's setup); a delta carrying "
        "several tokens counts the rest after a gap of 0. Added p99: a system's p99 gap "
        "minus that of the stand-in called directly.",
        "",
        figure("gaps", "gaps between tokens of paced streams"),
        "",
        "## Slow streams and cancels",
        "",
        "During the slow-stream burst a probe keeps 4 streams of its own going, each "
        "cancelled by the client at its second token; the stand-in records when each one's "
        "upstream connection closed (`time.monotonic()`, one clock for every process). "
        + "; ".join(cancel_counts)
        + ".",
        "",
        figure("burst", "stream completion times of the burst"),
        figure("cancel", "cancel to upstream closed"),
        "",
        "## Open streams held",
        "",
        f"{hold.total:,} streams opened through a fresh router (after a warm-up), "
        + (f"{hold.opened_per_s:,} a second" if hold.opened_per_s else "all at once")
        + f"; each answered with {hold.tokens} tokens in {hold.ideal_s:g} s ({hold.prompt}), "
        "long enough for all to be open together at the end of the ramp. Resident memory "
        "(all the router's processes) sampled with the stand-in's count of open streams. "
        "Per stream: (RSS at the peak - RSS before) / streams open at the peak. "
        "The floor is the same load on a bare grpc.aio server that relays each stream to "
        "the stand-in over a raw socket of its own (bench/relay_floor.py): grpc.aio's cost "
        "per call plus one upstream connection, and nothing of a router's.",
        "",
        *_hold_details(report),
        "",
        figure("hold", "open streams and router memory over time"),
        "",
    ]
