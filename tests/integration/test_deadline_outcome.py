"""A call whose deadline passes is logged and counted as DEADLINE_EXCEEDED, as its caller
sees it; CANCELLED is kept for a caller that really cancelled."""

from __future__ import annotations

import grpc
import pytest
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import make_config, request_counts
from .logcapture import captured_log

GPT = "gpt-4o-mini-2024-07-18"


async def test_a_passed_deadline_is_deadline_exceeded_in_metrics_and_log(
    emulator: Emulator,
) -> None:
    emulator.set_behavior(GPT, Behavior(latency_s=600))
    app = await App.start(make_config(), env={}, host="127.0.0.1", port=0, emulator=emulator)
    try:
        with captured_log() as log:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.ModelRouterServiceStub(channel)
                request = pb.GenerateRequest(
                    model=GPT, messages=[pb.Message(role=pb.ROLE_USER, content="Wait.")]
                )
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Generate(request, timeout=2)
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # The boundary logs and counts in the same step admission lets the call go.
            assert await app.admission.wait_idle(60)
            done = [e for e in log.events() if e["event"] == "request_done"]
    finally:
        await app.stop(grace_s=0)
    assert request_counts(app, "Generate") == {"DEADLINE_EXCEEDED": 1}
    assert [(e["rpc"], e["code"]) for e in done] == [("Generate", "DEADLINE_EXCEEDED")]
