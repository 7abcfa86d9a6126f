"""Stopping a child process the way its own shutdown expects: SIGTERM first, so a server
drains and a worker writes what it buffered, and SIGKILL only when it does not end in time.

The router, the emulator, the bench's stand-in and the LiteLLM proxy are all stopped so.
"""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes], *, grace_s: float) -> int:
    """SIGTERM `process` (unless it already ended), SIGKILL it after `grace_s`; returns its
    exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
