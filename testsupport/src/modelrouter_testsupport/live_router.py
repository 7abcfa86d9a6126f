"""`python -m modelrouter_testsupport.live_router DIR`: `modelrouter serve` for a test in
another language.

The Go and TypeScript client tests start this as a child: it starts the router on free
ports with its built-in emulator (no provider keys, in-memory conversations, exactly as the
Python end-to-end tests do), prints one JSON line `{"target": ..., "emulator_url": ...}`
on stdout once the router is healthy, and stops the router when its stdin closes (the
test ended, or died) or on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from modelrouter_testsupport.router_process import start_router, stop_router


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modelrouter_testsupport.live_router DIR", file=sys.stderr)
        return 2
    # Generous: the client suites may start while other builds and tests load the machine.
    router = start_router(Path(argv[0]), metrics=False, timeout_s=120)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or exited
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        print(json.dumps({"target": router.target, "emulator_url": router.emulator_url()}))
        sys.stdout.flush()
        done.wait()
    finally:
        stop_router(router)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
