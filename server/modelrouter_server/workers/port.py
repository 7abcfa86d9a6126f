"""The port the workers share, held by the supervisor.

The supervisor binds the address itself with SO_REUSEPORT, without listening: a bound
socket that does not listen is in no accept queue, so it takes no connections, but it
keeps the port ours (port 0 becomes a concrete port to hand every worker; a process
without SO_REUSEPORT, or of another user, cannot take it while a worker restarts). The
workers bind the same address with grpc's `grpc.so_reuseport` and the kernel spreads new
connections among their listening sockets (Linux; other systems may not balance).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field

from modelrouter_server.api.server import BindError, check_not_in_use

_ATTEMPTS = 5  # port 0 on a host with several addresses: a port free on all of them


@dataclass
class ReservedPort:
    port: int
    sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def reserve_port(host: str, port: int) -> ReservedPort:
    """Hold `host:port` (0: a free port) for the workers. `BindError` naming the address
    when something already listens there or it is not available."""
    check_not_in_use(host, port)  # without SO_REUSEPORT: finds any listener, ours too
    for _ in range(_ATTEMPTS):
        reserved = _try_reserve(host, port)
        if reserved is not None:
            return reserved
    raise BindError(f"cannot listen on {host}:{port}: no port free on every address")


def _try_reserve(host: str, port: int) -> ReservedPort | None:
    """Bind every address of `host`; None when port 0 chose a port another address of
    the host has taken (try again)."""
    address = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {address}: {exc.strerror}") from exc
    reserved = ReservedPort(port)
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((sockaddr[0], reserved.port, *sockaddr[2:]))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and port == 0 and reserved.sockets:
                reserved.close()
                return None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue  # an address family this host lacks: grpc skips it too
            reserved.close()
            raise BindError(f"cannot listen on {address}: {exc.strerror}") from exc
        reserved.sockets.append(sock)
        reserved.port = sock.getsockname()[1]
    if not reserved.sockets:
        raise BindError(f"cannot listen on {address}: not available")
    return reserved
