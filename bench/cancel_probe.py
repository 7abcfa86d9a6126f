"""Client cancel -> upstream connection closed, measured while a load runs.

A probe opens long streams one after another (a few at once), reads two tokens and
cancels; each stream carries a tag, and the stand-in records when that stream's connection
closed. Both sides read `time.monotonic()`, one clock for all processes on the machine.
For modelrouter the probe cancels the gRPC call; for the SDK paths (direct, LiteLLM) it
closes the SDK's stream, which is what an agent's cancellation does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc
import openai
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_client import AsyncModelRouterClient

from bench.sdk_client import sdk_client

# Long enough that no probe stream ends by itself before it is cancelled.
_PROMPT = "tokens=100000 delay_ms=20 tag={tag}"
_TOKENS_BEFORE_CANCEL = 2

_tags = itertools.count()


@dataclass
class CancelProbe:
    """Tag -> monotonic time the client cancelled that stream; failures to get that far."""

    cancelled: dict[str, float] = field(default_factory=dict)
    failures: int = 0

    def delays(self, disconnects: Mapping[str, float]) -> tuple[list[float], int]:
        """(seconds from each cancel to its upstream close, streams never seen closed)."""
        delays = [disconnects[t] - at for t, at in self.cancelled.items() if t in disconnects]
        return delays, len(self.cancelled) - len(delays)


def _tag(prefix: str) -> str:
    return f"{prefix}-{next(_tags)}"


async def _router_one(client: AsyncModelRouterClient, model: str, probe: CancelProbe) -> None:
    tag = _tag("router")
    deltas = 0
    # aclosing: leaving the loop closes the generator at once, which cancels the RPC.
    # (`stream` is an async generator, typed as the iterator it returns.)
    stream = cast(
        AsyncGenerator[pb.GenerateStreamResponse, None],
        client.stream(_PROMPT.format(tag=tag), model=model, timeout=60),
    )
    async with contextlib.aclosing(stream) as events:
        async for event in events:
            if event.WhichOneof("event") == "delta":
                deltas += 1
                if deltas == _TOKENS_BEFORE_CANCEL:
                    probe.cancelled[tag] = time.monotonic()
                    return
    probe.failures += 1  # the stream ended without being cancelled


async def _sdk_one(client: openai.AsyncOpenAI, model: str, probe: CancelProbe) -> None:
    tag = _tag("sdk")
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": _PROMPT.format(tag=tag)}],
        stream=True,
    )
    deltas = 0
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas += 1
            if deltas == _TOKENS_BEFORE_CANCEL:
                probe.cancelled[tag] = time.monotonic()
                await stream.close()
                return
    probe.failures += 1


async def _loop(
    one: Callable[[CancelProbe], Awaitable[None]],
    probe: CancelProbe,
    stop: asyncio.Event,
    interval_s: float,
) -> None:
    while not stop.is_set():
        try:
            await one(probe)
        except (grpc.aio.AioRpcError, openai.APIError, OSError):
            probe.failures += 1  # counted in the report; the probe goes on
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)


async def probe_router(
    target: str, model: str, stop: asyncio.Event, *, parallel: int = 4, interval_s: float = 0.1
) -> CancelProbe:
    """Cancel gRPC streams through modelrouter until `stop`."""
    probe = CancelProbe()
    async with AsyncModelRouterClient(target) as client:
        await asyncio.gather(
            *(
                _loop(lambda p: _router_one(client, model, p), probe, stop, interval_s)
                for _ in range(parallel)
            )
        )
    return probe


async def probe_sdk(
    base_url: str,
    model: str,
    api_key: str,
    stop: asyncio.Event,
    *,
    parallel: int = 4,
    interval_s: float = 0.1,
) -> CancelProbe:
    """Cancel SDK streams (direct or through an OpenAI-compatible proxy) until `stop`."""
    probe = CancelProbe()
    client = sdk_client(base_url, api_key, connections=parallel + 4, timeout_s=60)
    try:
        await asyncio.gather(
            *(
                _loop(lambda p: _sdk_one(client, model, p), probe, stop, interval_s)
                for _ in range(parallel)
            )
        )
    finally:
        await client.close()
    return probe
