"""Bytes that are not a valid request: INVALID_ARGUMENT naming the type, on every RPC,
counted in the metrics and logged as one JSON line each; the server stays up."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_client import pb, user
from modelrouter_server.api.offload import OFF_LOOP_BYTES
from modelrouter_server.app import App
from modelrouter_server.emulator import Emulator
from prometheus_client.parser import text_string_to_metric_families

from .conftest import make_config
from .logcapture import captured_log
from .malformed import METHODS, SERVICE, malformed, varint


async def _call_raw(channel: grpc.aio.Channel, method: str, streaming: bool, data: bytes) -> None:
    path = f"/{SERVICE.full_name}/{method}"
    if streaming:
        stream = channel.unary_stream(path, request_serializer=None, response_deserializer=None)
        async for _ in stream(data, timeout=10):
            pass
    else:
        unary = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        await unary(data, timeout=10)


def _requests_total(app: App) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    text = app.metrics.exposition().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modelrouter_requests_total":
                key = (sample.labels["rpc"], sample.labels["code"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


async def test_undecodable_requests_are_invalid_argument_on_every_rpc(emulator: Emulator) -> None:
    sent: dict[str, int] = {}
    with captured_log() as log:
        app = await App.start(
            make_config(),
            env={},
            host="127.0.0.1",
            port=0,
            emulator=emulator,
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                for method in METHODS:
                    type_name = method.input_type.full_name
                    for label, data in malformed(method).items():
                        try:
                            await _call_raw(channel, method.name, method.server_streaming, data)
                        except grpc.aio.AioRpcError as error:
                            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, label
                            assert error.details() == f"request is not a valid {type_name}"
                        else:
                            raise AssertionError(f"{method.name} accepted {label}")
                        sent[method.name] = sent.get(method.name, 0) + 1
                        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                        assert reply.status == health_pb2.HealthCheckResponse.SERVING
            counts = _requests_total(app)
        finally:
            await app.stop(grace_s=0)
    assert set(sent) == {m.name for m in METHODS} and len(sent) == 9
    for rpc, n in sent.items():
        assert counts[(rpc, "INVALID_ARGUMENT")] == n
    events = log.events()  # every line is JSON
    done = [e for e in events if e["event"] == "request_done"]
    assert len(done) == sum(sent.values())
    assert all(e["code"] == "INVALID_ARGUMENT" and e["level"] == "info" for e in done)
    assert {e["rpc"] for e in done} == set(sent)


async def test_an_oversized_request_id_is_refused_and_not_logged(emulator: Emulator) -> None:
    huge = "r" * 20_000
    with captured_log() as log:
        app = await App.start(make_config(), env={}, host="127.0.0.1", port=0, emulator=emulator)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.ModelRouterServiceStub(channel)
                request = pb.GenerateRequest(messages=[user("Hi")], request_id=huge)
                try:
                    await stub.Generate(request, timeout=10)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
                else:
                    raise AssertionError("a 20,000-character request id was accepted")
        finally:
            await app.stop(grace_s=0)
    (done,) = [e for e in log.events() if e["event"] == "request_done"]
    assert done["code"] == "INVALID_ARGUMENT"
    assert huge[:200] not in log.text


async def test_large_undecodable_requests_are_invalid_argument_on_every_rpc(
    emulator: Emulator,
) -> None:
    """A request past `OFF_LOOP_BYTES` is decoded by the handler in a worker thread, not by
    grpc's deserializer: bytes that do not decode still end as INVALID_ARGUMENT."""
    # Field 1, length-delimited, promising more bytes than are sent: no message type
    # decodes it, and it is well past the size that is decoded off the loop.
    present = OFF_LOOP_BYTES + 1024
    data = varint(1 << 3 | 2) + varint(present * 2) + b"a" * present
    app = await App.start(make_config(), env={}, host="127.0.0.1", port=0, emulator=emulator)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            for method in METHODS:
                try:
                    await _call_raw(channel, method.name, method.server_streaming, data)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, method.name
                    type_name = method.input_type.full_name
                    assert error.details() == f"request is not a valid {type_name}"
                else:
                    raise AssertionError(f"{method.name} accepted truncated bytes")
        counts = _requests_total(app)
    finally:
        await app.stop(grace_s=0)
    assert all(counts[(m.name, "INVALID_ARGUMENT")] == 1 for m in METHODS)
