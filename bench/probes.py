"""Latency measured from Python: the router against the same emulator called directly
through the official SDK, and time to first token while the router is under load.

Both paths run in this one process, one call at a time and interleaved, so the client-side
costs and any drift in the machine's load are shared; what differs is the router.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import openai
from modelrouter_client import AsyncModelRouterClient, user

DIRECT_MODEL = "gpt-4o-mini-2024-07-18"
PROMPT = "Hello"
# What the router asks for when max_output_tokens is 0 (min of 4096 and the model's cap).
MAX_TOKENS = 4096


@dataclass
class OverheadSamples:
    """Per-call seconds for each path."""

    unary_direct: list[float] = field(default_factory=list)
    unary_router: list[float] = field(default_factory=list)
    ttft_direct: list[float] = field(default_factory=list)
    ttft_router: list[float] = field(default_factory=list)
    stream_direct: list[float] = field(default_factory=list)
    stream_router: list[float] = field(default_factory=list)


async def _direct_unary(sdk: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    await sdk.chat.completions.create(
        model=DIRECT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_completion_tokens=MAX_TOKENS,
    )
    return time.perf_counter() - started


async def _router_unary(client: AsyncModelRouterClient) -> float:
    started = time.perf_counter()
    await client.generate([user(PROMPT)], model=DIRECT_MODEL)
    return time.perf_counter() - started


async def _direct_stream(sdk: openai.AsyncOpenAI) -> tuple[float, float]:
    started = time.perf_counter()
    first: float | None = None
    stream = await sdk.chat.completions.create(
        model=DIRECT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        max_completion_tokens=MAX_TOKENS,
        stream=True,
    )
    async with stream:
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
    ended = time.perf_counter()
    return (first or ended) - started, ended - started


async def _router_stream(client: AsyncModelRouterClient) -> tuple[float, float]:
    started = time.perf_counter()
    first: float | None = None
    async for event in client.stream([user(PROMPT)], model=DIRECT_MODEL):
        if first is None and event.WhichOneof("event") == "delta":
            first = time.perf_counter()
    ended = time.perf_counter()
    return (first or ended) - started, ended - started


async def measure_overhead(
    target: str, openai_base_url: str, *, calls: int, warmup: int = 20
) -> OverheadSamples:
    """`calls` unary calls and `calls` streams on each path, alternating path by path."""
    samples = OverheadSamples()
    sdk = openai.AsyncOpenAI(base_url=openai_base_url, api_key="bench-not-a-key", max_retries=0)
    async with AsyncModelRouterClient(target, default_timeout=30.0) as client:
        try:
            for _ in range(warmup):
                await _direct_unary(sdk)
                await _router_unary(client)
                await _direct_stream(sdk)
                await _router_stream(client)
            for _ in range(calls):
                samples.unary_direct.append(await _direct_unary(sdk))
                samples.unary_router.append(await _router_unary(client))
                ttft, total = await _direct_stream(sdk)
                samples.ttft_direct.append(ttft)
                samples.stream_direct.append(total)
                ttft, total = await _router_stream(client)
                samples.ttft_router.append(ttft)
                samples.stream_router.append(total)
        finally:
            await sdk.close()
    return samples


@dataclass
class LoadProbe:
    """Time to first token of single streams sent one after another while a load runs."""

    ttft: list[float] = field(default_factory=list)
    failures: int = 0


async def probe_ttft_until(
    target: str, model: str, stop: asyncio.Event, *, interval_s: float = 0.25
) -> LoadProbe:
    """Until `stop` is set: open a stream on `model`, time its first token, cancel it."""
    probe = LoadProbe()
    async with AsyncModelRouterClient(target, default_timeout=60.0) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                async for event in client.stream([user(PROMPT)], model=model):
                    if event.WhichOneof("event") == "delta":
                        probe.ttft.append(time.perf_counter() - started)
                        break  # leaving the loop cancels the RPC
            except grpc.aio.AioRpcError:
                probe.failures += 1  # counted in the report; the run goes on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return probe


async def sample_gauge_until(
    scrape: Callable[[], str], name: str, stop: asyncio.Event, *, interval_s: float = 0.5
) -> list[tuple[float, float]]:
    """(epoch seconds, value) of an unlabelled gauge on the router's /metrics until `stop`.

    Returns nothing when the router does not export the gauge (or has no metrics port).
    """
    samples: list[tuple[float, float]] = []
    pattern = re.compile(rf"^{re.escape(name)} ([0-9.eE+-]+)$", re.MULTILINE)
    while not stop.is_set():
        try:
            text = await asyncio.to_thread(scrape)
        except OSError:
            return samples
        match = pattern.search(text)
        if match is None:
            return samples
        samples.append((time.time(), float(match.group(1))))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
    return samples
