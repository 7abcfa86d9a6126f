"""Run the emulator standalone: `python -m modelrouter_server.emulator --port 8089`."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from modelrouter_server.emulator.app import Emulator
from modelrouter_server.emulator.exchange import DEFAULT_MAX_RECORDS


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelrouter_server.emulator",
        description="Serve the Anthropic and OpenAI API emulator until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--seed", type=int, default=0, help="seed of the error-rate draws")
    parser.add_argument("--ping-every-tokens", type=int, default=8)
    parser.add_argument(
        "--admin",
        action="store_true",
        help="serve the /_emulator/ admin endpoints (scripting, and every recorded prompt); "
        "for tests and benchmarks only",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=DEFAULT_MAX_RECORDS,
        help="requests and disconnects remembered (the latest; default %(default)s)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        seed=args.seed,
        ping_every_tokens=args.ping_every_tokens,
        admin=args.admin,
        max_records=args.max_records,
    )
    await emulator.start(args.host, args.port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    try:
        admin = "admin endpoints on" if emulator.admin else "admin endpoints off"
        print(
            f"emulator listening: Anthropic base_url {emulator.base_url}, "
            f"OpenAI base_url {emulator.openai_base_url} ({admin})",
            flush=True,
        )
        await stopped.wait()
    finally:
        await emulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m modelrouter_server.emulator`."""
    asyncio.run(_serve(_parse(argv)))


if __name__ == "__main__":
    main()
