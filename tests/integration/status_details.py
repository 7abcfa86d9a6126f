"""Reading the google.rpc.Status details a failed RPC carries."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2

M = TypeVar("M", bound=Message)


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    # grpc-stubs types a metadatum as an opaque object; at run time it is a (key, value) pair.
    pairs: tuple[tuple[str, str | bytes], ...] = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
    for key, value in pairs:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    raise AssertionError("the status carries no details")


def details_of(error: grpc.aio.AioRpcError, kind: type[M]) -> list[M]:
    """Every detail of type `kind`, unpacked."""
    out: list[M] = []
    for detail in rich_status(error).details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            out.append(message)
    return out
