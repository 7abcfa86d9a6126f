"""Inter-token gaps: paced streams read by a Python client that notes when each token
arrives, for the "added inter-token p99" target.

The stand-in sends a token every `delay_ms`; what a caller sees between two tokens is that
delay plus whatever each hop added to one token and not the other. The same row runs
against the stand-in directly (the SDK on its default client) and through each system, so
the difference of the two p99s is what the system adds. A delta that carries several
tokens (modelrouter joins the text that is already there when it writes) counts each of
them: the first after the gap since the previous delta, the rest after none. The first
token of a stream is left out: its wait is the stream's setup, not a gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import openai
from modelrouter_client import AsyncModelRouterClient

from bench.sdk_client import sdk_client
from bench.settings import StreamRow


@dataclass
class Gaps:
    """Seconds between consecutive tokens of the probe's streams, as the client got them."""

    gaps_s: list[float] = field(default_factory=list)
    streams: int = 0
    failures: int = 0
    """Streams that failed or ended short."""


def _tokens_in(text: str) -> int:
    """How many of the stand-in's words a delta carries (each of its WORDS ends in one
    space)."""
    return text.count(" ")


async def _noted(deltas: AsyncIterator[str], expected: int, gaps: Gaps) -> None:
    """Note the gaps of one stream's text deltas; count a short stream as a failure."""
    seen, last = 0, 0.0
    async for text in deltas:
        tokens = _tokens_in(text)
        if not tokens:
            continue
        now = time.monotonic()
        if seen:
            gaps.gaps_s.append(now - last)
        gaps.gaps_s.extend(0.0 for _ in range(tokens - 1))
        seen, last = seen + tokens, now
    if seen == expected:
        gaps.streams += 1
    else:
        gaps.failures += 1


async def _run(row: StreamRow, one: Callable[[Gaps], Awaitable[None]]) -> Gaps:
    """`row.total` streams, `row.concurrency` at a time."""
    gaps = Gaps()
    gate = asyncio.Semaphore(row.concurrency)

    async def guarded() -> None:
        async with gate:
            try:
                await one(gaps)
            except (grpc.aio.AioRpcError, openai.APIError, OSError):
                gaps.failures += 1

    await asyncio.gather(*(guarded() for _ in range(row.total or row.concurrency)))
    return gaps


async def gaps_router(target: str, model: str, row: StreamRow) -> Gaps:
    """The row's streams through modelrouter's GenerateStream."""
    async with AsyncModelRouterClient(target) as client:

        async def texts() -> AsyncIterator[str]:
            async for event in client.stream(row.prompt, model=model, timeout=120):
                if event.WhichOneof("event") == "delta":
                    yield event.delta.text

        return await _run(row, lambda gaps: _noted(texts(), row.tokens, gaps))


async def gaps_sdk(base_url: str, model: str, api_key: str, row: StreamRow) -> Gaps:
    """The row's streams through an OpenAI-compatible endpoint, with the SDK's default
    (httpx) client: the stand-in directly, or a proxy."""
    client = sdk_client(base_url, api_key, connections=row.concurrency + 4, timeout_s=120)

    async def texts() -> AsyncIterator[str]:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": row.prompt}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    try:
        return await _run(row, lambda gaps: _noted(texts(), row.tokens, gaps))
    finally:
        await client.close()
