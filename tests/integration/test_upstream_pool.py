"""A call that finds its provider's connection pool full waits at most `pool_timeout_s`,
and the wait that runs out is visible: counted in the metrics and named in the error."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App
from modelrouter_server.emulator import Behavior, Emulator

from .conftest import make_config
from .status_details import details_of

GPT = "gpt-4o-mini-2024-07-18"


async def test_a_full_pool_fails_the_call_after_the_pool_timeout_and_counts_it(
    emulator: Emulator,
) -> None:
    config = make_config(resilience={"inter_token_timeout_s": 600.0, "max_attempts_per_model": 1})
    providers = {
        name: provider.model_copy(update={"max_connections": 1, "pool_timeout_s": 0.2})
        for name, provider in config.providers.items()
    }
    config = config.model_copy(update={"providers": providers})
    app = await App.start(config, env={}, host="127.0.0.1", port=0, emulator=emulator)
    try:
        async with AsyncModelRouterClient(f"127.0.0.1:{app.port}") as client:
            # The one pooled connection is held by a stream whose upstream stalls.
            emulator.enqueue(GPT, Behavior(output_tokens=40, stall_after_tokens=1, stall_s=3600))
            holder = client.stream("Go on.", model=GPT, disable_fallback=True, timeout=60)
            assert (await anext(holder)).WhichOneof("event") == "start"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.generate("Hello", model=GPT, disable_fallback=True, timeout=30)
            (info,) = details_of(caught.value, error_details_pb2.ErrorInfo)
            assert "no free connection in the pool within 0.2s" in info.metadata["attempt_0"]
            await holder.aclose()  # type: ignore[attr-defined]  # an async generator
        counted = app.metrics.registry.get_sample_value(
            "modelrouter_upstream_pool_timeouts_total", {"provider": "openai"}
        )
        assert counted == 1
    finally:
        await app.stop(grace_s=0)
