"""The provider emulator as its own process (`python -m modelrouter_server.emulator`).

The benchmarks run it apart from the router so that the two do not share one event loop:
a real provider is another machine, and the router's figures should not include the
emulator's work.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelrouter_testsupport.child_process import terminate
from modelrouter_testsupport.router_process import free_port


@dataclass(frozen=True)
class EmulatorProcess:
    base_url: str
    process: subprocess.Popen[bytes]

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"


def start_emulator(log_path: Path, *, timeout_s: float = 20.0) -> EmulatorProcess:
    """Start the emulator on a free port; returns once its admin endpoint answers."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelrouter_server.emulator", "--port", str(port), "--admin"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    emulator = EmulatorProcess(base_url=f"http://127.0.0.1:{port}", process=process)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{emulator.base_url}/_emulator/requests", timeout=1):
                return emulator
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            stop_emulator(emulator)
            raise RuntimeError(f"the emulator did not answer within {timeout_s:g} s")
        time.sleep(0.1)


def stop_emulator(emulator: EmulatorProcess) -> None:
    terminate(emulator.process, grace_s=10)
