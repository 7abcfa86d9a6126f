"""The stand-in upstream (bench/standin.py) as its own process, and its counters."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrouter_testsupport.child_process import terminate

from bench.machine import process_cpu_s

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class StandInProcess:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        """What an OpenAI SDK client takes as its base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/_standin/stats"
        with urllib.request.urlopen(url, timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        return stats

    def reset(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_standin/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)


def start_listening(
    module: str, args: list[str], log_path: Path
) -> tuple[int, subprocess.Popen[bytes]]:
    """Run `python -m module *args`, a server that prints `listening on PORT` once it
    listens; returns the port and the process."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("listening on "):
        process.kill()
        raise RuntimeError(f"{module} did not start: {line!r}; see {log_path}")
    return int(line.split()[-1]), process


def start_standin(log_path: Path) -> StandInProcess:
    """Start the stand-in on a free port; returns once it listens."""
    port, process = start_listening("bench.standin", ["--port", "0"], log_path)
    return StandInProcess(port=port, process=process)


def stop_standin(standin: StandInProcess) -> None:
    terminate(standin.process, grace_s=10)
