"""The `modelrouter` command line: argument parsing and dispatch to a subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from modelrouter_client import KeyWithoutTls

from modelrouter_server.cli import chat, count_tokens, generate, keys, models, protoset, serve
from modelrouter_server.cli._common import EXIT_BROKEN_PIPE, EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelrouter",
        description="modelrouter: one gRPC front door to many LLM providers.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (serve, chat, generate, models, count_tokens, keys, protoset):
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `modelrouter` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyWithoutTls as exc:
        print(f"modelrouter: {exc} (use --tls)", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader left (`modelrouter models | head -2`): nothing is wrong to report.
        # stdout goes to /dev/null so the interpreter's last flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
