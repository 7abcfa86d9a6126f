"""`modelrouter models`: the ListModels table."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import grpc
from modelrouter_client import pb

from modelrouter_server.cli._common import (
    EXIT_OK,
    Connection,
    add_connection_arguments,
    connection_from,
    report_rpc_error,
)

_CIRCUIT = {
    pb.CIRCUIT_STATE_UNSPECIFIED: "-",
    pb.CIRCUIT_STATE_CLOSED: "closed",
    pb.CIRCUIT_STATE_OPEN: "OPEN",
    pb.CIRCUIT_STATE_HALF_OPEN: "half-open",
}
_HEADER = (
    "MODEL",
    "PROVIDER",
    "CONTEXT",
    "MAX OUT",
    "$IN/MTOK",
    "$OUT/MTOK",
    "CIRCUIT",
    "EMULATED",
    "ALIASES",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models", help="list the models", description="The models the router can serve."
    )
    add_connection_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(list_models(connection_from(args)))


async def list_models(connection: Connection) -> int:
    async with connection.client() as client:
        try:
            models = await client.list_models()
        except grpc.aio.AioRpcError as exc:
            return report_rpc_error(exc, connection)
    print(render_table(models))
    return EXIT_OK


def render_table(models: Sequence[pb.ModelInfo]) -> str:
    """The models as an aligned text table, one row per model."""
    rows = [_HEADER] + [
        (
            m.id,
            m.provider,
            f"{m.context_window:,}",
            f"{m.max_output_tokens:,}",
            f"{m.pricing.input_per_mtok:.2f}",
            f"{m.pricing.output_per_mtok:.2f}",
            _CIRCUIT.get(m.circuit_state, "?"),
            "yes" if m.emulated else "no",
            ", ".join(m.aliases) or "-",
        )
        for m in models
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    # Numbers are right-aligned so their digits line up.
    numeric = {2, 3, 4, 5}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
