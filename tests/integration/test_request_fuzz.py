"""Fuzz every RPC through real gRPC against a real router on the emulator: generated
requests of every message type, and byte-level mutations of valid serialized requests.

Whatever arrives, the answer is a status the caller can act on, never UNKNOWN and never
INTERNAL, and the server answers its health check after every case. The server runs on
its own event loop in a thread so the cases can be plain synchronous calls; the count of
cases is bounded by `max_examples`, their time by a budget past which the remaining cases
are counted as skipped instead of sent. Both counts are printed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelrouter_server.app import App, emulated_models
from modelrouter_server.emulator import Emulator

from .conftest import make_config
from .malformed import METHODS, SERVICE
from .request_strategies import message_strategy, mutations

CASES_PER_RPC = 75
"""Generated requests per RPC (8 RPCs), and as many mutated ones."""
BUDGET_S = 30.0
"""Past this, remaining cases are counted as skipped (a bound on a loaded machine, not an
assertion about speed)."""
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
T = TypeVar("T")


@dataclass
class _Served:
    """A router and its emulator on an event loop of their own."""

    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    skipped: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


@pytest.fixture(scope="module")
def served(pytestconfig: pytest.Config) -> Iterator[tuple[_Served, grpc.Channel]]:
    served = _Served()
    thread = threading.Thread(target=served.loop.run_forever, daemon=True)
    thread.start()
    config = make_config(resilience={"max_attempts_per_model": 1})

    async def start() -> tuple[Emulator, App]:
        emulator = Emulator(emulated_models(config))
        await emulator.start()
        app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
        return emulator, app

    emulator, app = served.run(start())
    channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield served, channel
    finally:
        channel.close()
        served.run(app.stop(grace_s=0))
        served.run(emulator.stop())
        served.loop.call_soon_threadsafe(served.loop.stop)
        thread.join(timeout=10)
        served.loop.close()
        # Shown in the run's output, not captured: the report of how much was fuzzed.
        total = served.sent + served.skipped
        report = (
            f"\nfuzz: {served.sent} cases sent through gRPC, {served.skipped} skipped of "
            f"{total} (budget {BUDGET_S:.0f}s); status counts {dict(sorted(served.codes.items()))}"
        )
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        assert capture is not None
        with capture.global_and_fixture_disabled():
            print(report)


def _send(served: _Served, channel: grpc.Channel, method: MethodDescriptor, data: bytes) -> None:
    if time.monotonic() - served.started > BUDGET_S:
        served.skipped += 1
        return
    path = f"/{SERVICE.full_name}/{method.name}"
    code = grpc.StatusCode.OK
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
            for _ in stream(data, timeout=15):
                pass
        else:
            unary = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            unary(data, timeout=15)
    except grpc.RpcError as error:
        code = error.code()
        assert code not in BAD, f"{method.name}: {code} {error.details()}"
    served.sent += 1
    served.codes[code.name] = served.codes.get(code.name, 0) + 1
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


_SETTINGS = settings(
    max_examples=CASES_PER_RPC,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_generated_requests(served: tuple[_Served, grpc.Channel], method: MethodDescriptor) -> None:
    @_SETTINGS
    @given(message_strategy(method.input_type))
    def case(request: object) -> None:
        _send(*served, method, request.SerializeToString())  # type: ignore[attr-defined]

    case()


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_mutated_requests(served: tuple[_Served, grpc.Channel], method: MethodDescriptor) -> None:
    valid = message_strategy(method.input_type).map(lambda m: m.SerializeToString())

    @_SETTINGS
    @given(valid.flatmap(mutations) | st.binary(max_size=64))
    def case(data: bytes) -> None:
        _send(*served, method, data)

    case()
