"""`modelrouter serve`: run the router (one process, or a supervisor and N workers)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from modelrouter_server.cli._common import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE


def _workers(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (0: one per CPU core)")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="serve the gRPC API")
    parser.add_argument("--config", type=Path, default=None, help="TOML config file")
    parser.add_argument("--host", default=None, help="listen address (default: from config)")
    parser.add_argument("--port", type=int, default=None, help="gRPC port (default: from config)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port (default: from config; 0 turns it off)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="worker processes sharing the port (default: from config; 0: one per CPU core;"
        " 1: this process alone, no supervisor)",
    )
    # Set by the supervisor on the workers it starts, never by hand (workers.plan.WorkerSpec).
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the client subcommands need none of the server stack
    # (provider SDKs, tokenizers), and `modelrouter chat` should start quickly.
    from modelrouter_server.api.descriptors import DescriptorBudgetError
    from modelrouter_server.api.server import BindError
    from modelrouter_server.config import ConfigError
    from modelrouter_server.errors import StoreError

    try:
        return asyncio.run(_serve(args))
    except (ConfigError, DescriptorBudgetError, BindError) as exc:
        print(f"modelrouter: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        # The store's message already names it and the cause (a damaged or missing file,
        # an unreachable Redis): a traceback would only hide that line.
        print(f"modelrouter: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_OK


async def _serve(args: argparse.Namespace) -> int:
    """One router in this process (`--workers 1`), a worker (`--worker`, from the
    supervisor), or the supervisor of several."""
    from modelrouter_server.app import load_serving_config, serve
    from modelrouter_server.workers import WorkerSpec, serve_worker, serve_workers, worker_count

    config = load_serving_config(args.config)
    host: str | None = args.host
    port: int | None = args.port
    if args.worker is not None:
        assert host is not None and port is not None  # the supervisor always passes them
        await serve_worker(config, WorkerSpec.from_arg(args.worker), host=host, port=port)
        return EXIT_OK
    count = worker_count(config, args.workers)
    if count == 1:
        await serve(config, host=host, port=port, metrics_port=args.metrics_port)
        return EXIT_OK
    return await serve_workers(
        config,
        count=count,
        config_path=args.config,
        host=host,
        port=port,
        metrics_port=args.metrics_port,
    )
