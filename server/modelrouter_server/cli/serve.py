"""`modelrouter serve`: run the router."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from modelrouter_server.cli._common import EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE


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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: the client subcommands need none of the server stack
    # (provider SDKs, tokenizers), and `modelrouter chat` should start quickly.
    from modelrouter_server.api.descriptors import DescriptorBudgetError
    from modelrouter_server.api.server import BindError
    from modelrouter_server.app import serve
    from modelrouter_server.config import ConfigError
    from modelrouter_server.errors import StoreError

    config: Path | None = args.config
    host: str | None = args.host
    port: int | None = args.port
    metrics_port: int | None = args.metrics_port
    try:
        asyncio.run(serve(config, host=host, port=port, metrics_port=metrics_port))
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
    return EXIT_OK
