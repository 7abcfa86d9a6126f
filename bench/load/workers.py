"""Unary Generate calls/s with one worker and with N (`modelrouter serve --workers N`),
side by side: rounds alternate 1 and N workers, each round runs ghz at every concurrency
for `--seconds`, against an emulator in its own process (so no router runs it).

ghz opens `--connections` HTTP/2 connections (8 by default): the kernel spreads
connections, not calls, among the workers, so one connection would reach one worker.
The figures are noisy on a shared machine: compare the columns of one run.

Run with `python -m bench.load.workers` (`--workers 2 --concurrency 16 50 --seconds 10
--rounds 2`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from modelrouter_testsupport.router_process import modelrouter_command, start_router, stop_router

from bench.emulator_process import start_emulator, stop_emulator
from bench.ghz import GHZ

_REQUEST = {
    "messages": [{"role": "ROLE_USER", "content": "hi"}],
    "model": "gpt-4o-mini",
    "max_output_tokens": 16,
}


@dataclass(frozen=True)
class Row:
    round: int
    workers: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    codes: dict[str, int]


def _ghz(protoset: Path, target: str, concurrency: int, connections: int, seconds: float) -> Row:
    command = [
        str(GHZ), "--insecure", "--protoset", str(protoset),
        "--call", "modelrouter.v1.ModelRouterService.Generate", "-d", json.dumps(_REQUEST),
        "-c", str(concurrency), "--connections", str(connections),
        "-z", f"{seconds:g}s", "--duration-stop", "wait", "--format", "json", target,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    report = json.loads(done.stdout)
    latency = {int(p["percentage"]): p["latency"] / 1e6 for p in report["latencyDistribution"]}
    return Row(
        round=0, workers=0, concurrency=concurrency, rps=float(report["rps"]),
        p50_ms=latency[50], p99_ms=latency[99], codes=dict(report["statusCodeDistribution"]),
    )  # fmt: skip


def measure(args: argparse.Namespace, work: Path) -> list[Row]:
    """Alternate 1 and `args.workers` workers for `args.rounds` rounds."""
    protoset = work / "modelrouter.protoset"
    subprocess.run([*modelrouter_command(), "protoset", "-o", str(protoset)], check=True)
    emulator = start_emulator(work / "emulator.log")
    rows = []
    try:
        for round_ in range(args.rounds):
            for workers in (1, args.workers):
                router = start_router(
                    work / f"router-{workers}-{round_}", metrics=False, log_level="warning",
                    emulator_url=emulator.base_url, workers=workers,
                )  # fmt: skip
                try:
                    for concurrency in args.concurrency:
                        row = _ghz(
                            protoset, router.target, concurrency, args.connections, args.seconds
                        )
                        rows.append(replace(row, round=round_, workers=workers))
                        print(rows[-1], flush=True)
                finally:
                    stop_router(router)
    finally:
        stop_emulator(emulator)
    return rows


def render(rows: list[Row], workers: int) -> str:
    """A table: calls/s per round and concurrency, 1 worker beside N, and their ratio."""
    lines = [
        f"| round | concurrency | 1 worker calls/s (p50, p99 ms) | {workers} workers calls/s"
        " (p50, p99 ms) | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    by_key = {(r.round, r.concurrency, r.workers): r for r in rows}
    for round_, concurrency in sorted({(r.round, r.concurrency) for r in rows}):
        one, many = by_key[(round_, concurrency, 1)], by_key[(round_, concurrency, workers)]
        lines.append(
            f"| {round_} | {concurrency} | {one.rps:.0f} ({one.p50_ms:.0f}, {one.p99_ms:.0f})"
            f" | {many.rps:.0f} ({many.p50_ms:.0f}, {many.p99_ms:.0f})"
            f" | {many.rps / one.rps:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 50])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelrouter-workers-bench-") as work:
        print(render(measure(args, Path(work)), args.workers))


if __name__ == "__main__":
    main()
