"""Running ghz and reading its JSON report.

ghz is given the .proto rather than using reflection: its reflection client asks for the
method's own symbol, which grpc-python's reflection service does not resolve
(grpc/grpc#34743).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "protos" / "modelrouter" / "v1" / "modelrouter.proto"
GHZ = ROOT / ".tools" / "bin" / "ghz"

_NS = 1e-9


@dataclass(frozen=True, slots=True)
class Call:
    """One call as ghz saw it: when it started and ended (epoch seconds), and its status."""

    start_s: float
    end_s: float
    status: str
    error: str

    @property
    def latency_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class GhzRun:
    """ghz's summary of one run plus every call."""

    name: str
    concurrency: int
    connections: int
    count: int
    total_s: float
    rps: float
    average_s: float
    fastest_s: float
    slowest_s: float
    percentiles_s: Mapping[int, float]
    status_codes: Mapping[str, int]
    errors: Mapping[str, int]
    calls: tuple[Call, ...]

    @property
    def ok(self) -> int:
        return self.status_codes.get("OK", 0)


def _epoch(timestamp: str) -> float:
    # ghz writes RFC 3339 with nanoseconds; fromisoformat takes at most microseconds.
    head, _, fraction = timestamp.rstrip("Z").partition(".")
    micro = (fraction + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{micro}+00:00").timestamp()


def parse_report(name: str, report: Mapping[str, object]) -> GhzRun:
    """A `GhzRun` from ghz's `--format json` output."""
    options = report["options"]
    assert isinstance(options, dict)
    details = report.get("details") or []
    assert isinstance(details, list)
    calls = []
    for detail in details:
        end = _epoch(str(detail["timestamp"]))
        # The timestamp is when the call ended (checked against wall time).
        calls.append(
            Call(
                start_s=end - float(detail["latency"]) * _NS,
                end_s=end,
                status=str(detail["status"]),
                error=str(detail.get("error", "")),
            )
        )
    distribution = report.get("latencyDistribution") or []
    assert isinstance(distribution, list)
    status_codes = report.get("statusCodeDistribution") or {}
    errors = report.get("errorDistribution") or {}
    assert isinstance(status_codes, dict) and isinstance(errors, dict)
    return GhzRun(
        name=name,
        concurrency=int(options["concurrency"]),
        connections=int(options.get("connections", 1)),
        count=int(_number(report, "count")),
        total_s=_number(report, "total") * _NS,
        rps=_number(report, "rps"),
        average_s=_number(report, "average") * _NS,
        fastest_s=_number(report, "fastest") * _NS,
        slowest_s=_number(report, "slowest") * _NS,
        percentiles_s={int(p["percentage"]): float(p["latency"]) * _NS for p in distribution},
        status_codes={str(k): int(v) for k, v in status_codes.items()},
        errors={str(k): int(v) for k, v in errors.items()},
        calls=tuple(sorted(calls, key=lambda c: c.start_s)),
    )


def _number(report: Mapping[str, object], key: str) -> float:
    value = report.get(key, 0)
    assert isinstance(value, int | float)
    return float(value)


def run_ghz(
    name: str,
    target: str,
    *,
    method: str,
    data: Mapping[str, object],
    concurrency: int,
    total: int | None = None,
    duration_s: float | None = None,
    connections: int = 1,
    rps: int | None = None,
    timeout_s: float = 60.0,
    ghz: Path = GHZ,
    save_to: Path | None = None,
) -> GhzRun:
    """Run ghz against `target` calling `modelrouter.v1.ModelRouterService/<method>`; `rps`
    caps how many calls start per second; `save_to` keeps ghz's JSON report."""
    command = [
        str(ghz),
        "--insecure",
        "--proto",
        str(PROTO),
        "-i",
        str(PROTO.parents[2]),
        "--call",
        f"modelrouter.v1.ModelRouterService.{method}",
        "-d",
        json.dumps(data),
        "-c",
        str(concurrency),
        "--connections",
        str(connections),
        "--timeout",
        f"{timeout_s:g}s",
        "--format",
        "json",
    ]
    if rps is not None:
        command += ["--rps", str(rps)]
    if duration_s is not None:
        # "wait": calls in flight when the time is up finish and are counted.
        command += ["-z", f"{duration_s:g}s", "--duration-stop", "wait"]
    else:
        command += ["-n", str(total or 200)]
    result = subprocess.run(
        [*command, target], capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0 or not result.stdout.startswith("{"):
        raise RuntimeError(f"ghz failed ({result.returncode}): {result.stderr or result.stdout}")
    if save_to is not None:
        save_to.write_text(result.stdout, encoding="utf-8")
    return parse_report(name, json.loads(result.stdout))
