"""What the client subcommands share: connection options, enum names, prompt input and
turning an RPC error into one line on stderr."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import TextIO

import grpc
from modelrouter_client import AsyncModelRouterClient, TlsFiles, pb

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 300.0

EXIT_OK = 0
EXIT_RPC_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: a service the command needs is not usable
EXIT_INTERRUPTED = 130  # the shell convention for a command ended by SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a command its reader left

TASKS: dict[str, pb.Task.ValueType] = {
    "auto": pb.TASK_UNSPECIFIED,
    "chat": pb.TASK_CHAT,
    "reasoning": pb.TASK_REASONING,
    "code": pb.TASK_CODE,
    "summarize": pb.TASK_SUMMARIZE,
    "extract": pb.TASK_EXTRACT,
}
"""Task names as typed on the command line; "auto" leaves the choice to the default route."""


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the router is, how to reach it, and how long each call may take."""

    target: str
    timeout_s: float
    tls: TlsFiles | None = None
    api_key: str | None = None

    def client(self) -> AsyncModelRouterClient:
        return AsyncModelRouterClient(
            self.target, default_timeout=self.timeout_s, tls=self.tls, api_key=self.api_key
        )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"router address, host:port (default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"deadline of each call (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="API key (default: $MODELROUTER_API_KEY); prefer the variable, since "
        "arguments show in the process list",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--ca-file", default=None, metavar="PEM", help="CA to verify the router (implies --tls)"
    )
    parser.add_argument(
        "--cert-file", default=None, metavar="PEM", help="client certificate, for mTLS"
    )
    parser.add_argument("--key-file", default=None, metavar="PEM", help="its private key")


def connection_from(args: argparse.Namespace) -> Connection:
    ca, cert, key = args.ca_file, args.cert_file, args.key_file
    tls = TlsFiles(ca, cert, key) if args.tls or ca or cert or key else None
    return Connection(
        target=str(args.target),
        timeout_s=float(args.timeout),
        tls=tls,
        api_key=args.api_key or os.environ.get("MODELROUTER_API_KEY") or None,
    )


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def task_name(text: str) -> str:
    name = text.lower()
    if name not in TASKS:
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; one of {', '.join(TASKS)}")
    return name


def read_prompt(words: list[str], stdin: TextIO) -> str:
    """The prompt from the command line, or from stdin when it is absent or "-"."""
    if words and words != ["-"]:
        return " ".join(words)
    if stdin.isatty():
        print("reading the prompt from stdin; end it with Ctrl-D", file=sys.stderr)
    return stdin.read().strip()


def describe_rpc_error(exc: grpc.aio.AioRpcError) -> str:
    """One line for an RPC failure: the status code name and the router's message."""
    return f"{exc.code().name}: {exc.details() or 'no details'}"


def report_rpc_error(exc: grpc.aio.AioRpcError, connection: Connection) -> int:
    """Print the failure on stderr; returns the exit status for it."""
    print(f"modelrouter: {connection.target}: {describe_rpc_error(exc)}", file=sys.stderr)
    return EXIT_RPC_ERROR
