"""The grpc.aio server: the ModelRouterService plus health checking and reflection (v1 and
v1alpha), so grpcurl and ghz work with no .proto files at hand."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_server.api.reflection import enable_reflection
from modelrouter_server.config.schema import LimitsConfig

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelRouterService"].full_name

# How long grpc holds a call the event loop has not taken up yet; past it grpc ends the call
# CANCELLED before any handler (or admission) runs, so it cannot carry a RetryInfo. grpc.aio
# takes up one call per loop round trip, about 100-150 new streams/s here while the loop
# starts other streams: a burst of thousands waits in this queue. grpc's default, stated.
PENDING_CALL_MAX_WAIT_S = 30


def receive_limit(max_request_bytes: int) -> int:
    """grpc's receive limit for a configured `max_request_bytes`: a quarter (at least
    1 MiB) above it."""
    return max_request_bytes + max(max_request_bytes // 4, 1024 * 1024)


class BindError(OSError):
    """An address the server should listen on is taken or not available; the message names
    it, so start-up can end in one line instead of grpc's traceback."""


class GrpcServer:
    """Owns the grpc.aio server and its health state."""

    def __init__(
        self,
        servicer: pb_grpc.ModelRouterServiceServicer,
        *,
        limits: LimitsConfig,
        reflection_enabled: bool = True,
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
        idle_connection_timeout_s: float = 300.0,
        max_client_connections: int | None = None,
        max_pending_calls: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        """`reuse_port`: bind with SO_REUSEPORT, sharing the port with the other workers
        (the kernel spreads connections among them); off, a taken port is an error."""
        options: list[tuple[str, int]] = [
            # Above the configured request size, so the error boundary's own check (which
            # names `max_request_bytes`) answers first; grpc's refusal, which names
            # nothing, is left for requests far over it. No reply is built that a client
            # cannot take.
            ("grpc.max_receive_message_length", receive_limit(limits.max_request_bytes)),
            ("grpc.max_send_message_length", limits.max_response_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_connection_idle_ms", int(idle_connection_timeout_s * 1000)),
        ]
        self._reuse_port = reuse_port
        if max_client_connections is not None:
            options.append(("grpc.max_allowed_incoming_connections", max_client_connections))
        if max_pending_calls is not None:
            # grpc cancels calls past its pending queue (CANCELLED, before any handler):
            # keep that queue far above what admission refuses with RESOURCE_EXHAUSTED.
            options.append(("grpc.server.max_pending_requests", max_pending_calls))
            options.append(("grpc.server.max_pending_requests_hard_limit", max_pending_calls))
        options.append(("grpc.server_max_unrequested_time_in_server", PENDING_CALL_MAX_WAIT_S))
        # No `maximum_concurrent_rpcs`: admission control (api/admission.py) answers
        # overload with RESOURCE_EXHAUSTED and a RetryInfo, and must be the only one to shed.
        self._server = grpc.aio.server(interceptors=interceptors, options=options)
        pb_grpc.add_ModelRouterServiceServicer_to_server(servicer, self._server)
        self._health = AsyncHealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if reflection_enabled:
            enable_reflection((SERVICE_NAME, health.SERVICE_NAME), self._server)
        self.port = 0

    async def start(
        self, host: str, port: int, *, credentials: grpc.ServerCredentials | None = None
    ) -> int:
        """Bind and serve (TLS with `credentials`); returns the bound port (useful with 0)."""
        address = f"{host}:{port}"
        if not self._reuse_port:  # a worker's supervisor holds the port: it checked
            check_not_in_use(host, port)
        try:
            if credentials is None:
                self.port = self._server.add_insecure_port(address)
            else:
                self.port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:  # grpc reports a failed bind as a bare RuntimeError
            raise BindError(f"cannot listen on {address}: in use or not available") from exc
        if self.port == 0:
            raise BindError(f"cannot listen on {address}: in use or not available")
        await self._server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        await self._health.set("", serving)
        await self._health.set(SERVICE_NAME, serving)
        return self.port

    async def set_not_serving(self) -> None:
        """Health turns NOT_SERVING for good (the start of a shutdown)."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, then let in-flight RPCs finish for up to `grace_s`."""
        await self.set_not_serving()
        await self._server.stop(grace_s)

    async def wait(self) -> None:
        await self._server.wait_for_termination()


def check_not_in_use(host: str, port: int) -> None:
    """Raise BindError when something already listens on the address. grpc would find out
    too, but only after logging a multi-line C-core error."""
    if port == 0:
        return
    address = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {address}: {exc.strerror}") from exc
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # The same option grpc sets, so a socket in TIME_WAIT does not count as in use.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                # Only "in use" is final: an address family the host lacks (no IPv6) is
                # skipped by grpc as well.
                if exc.errno == errno.EADDRINUSE:
                    raise BindError(f"cannot listen on {address}: address already in use") from exc
