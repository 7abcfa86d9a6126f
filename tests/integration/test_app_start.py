"""A start that fails part-way leaves nothing open: the emulator it started and the gRPC
port it bound are released before the error reaches the caller."""

from __future__ import annotations

import socket

import pytest
from modelrouter_server.app import App

from .conftest import make_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def can_bind(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_a_start_that_fails_last_closes_the_emulator_and_the_grpc_port() -> None:
    emulator_port, grpc_port = free_port(), free_port()
    config = make_config(emulator={"mode": "always", "port": emulator_port})
    with socket.socket() as taken:
        # The metrics endpoint starts last: everything else is open when it fails.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            await App.start(
                config,
                env={},
                host="127.0.0.1",
                port=grpc_port,
                metrics_port=taken.getsockname()[1],
            )
    assert can_bind(emulator_port), "the emulator the failed start opened is still serving"
    assert can_bind(grpc_port), "the gRPC port of the failed start is still bound"
