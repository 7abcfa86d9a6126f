"""The `openai` SDK client every bench caller of an OpenAI-compatible endpoint uses."""

from __future__ import annotations

import httpx2
import openai


def sdk_client(
    base_url: str, api_key: str, *, connections: int, timeout_s: float, http: str = "httpx"
) -> openai.AsyncOpenAI:
    """AsyncOpenAI without retries, on its default HTTP client (`http="httpx"`) or the
    aiohttp transport it ships, with a pool of `connections` kept alive: the SDK's default
    pool (1,000 connections, 100 kept alive) would cap or churn a bigger load."""
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    if http == "aiohttp":
        client: httpx2.AsyncClient = openai.DefaultAioHttpClient(limits=limits, timeout=timeout_s)
    else:
        client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s)
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout_s, http_client=client
    )
