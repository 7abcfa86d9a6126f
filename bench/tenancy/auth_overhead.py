"""What API-key authentication costs per call: the same RPCs against two routers in one
process, one with `auth.mode = "none"` and one with `auth.mode = "api_key"`, called in
alternating rounds so both see the same machine load. Prints p50/p99 per RPC and mode, and
the difference. Run with `python -m bench.tenancy.auth_overhead [--calls N]`.

ListModels isolates the edge (no provider, no ledger); Generate (emulator, no latency)
shows the same difference against a whole request. Both routers record usage in a ledger,
so the difference is the key check alone.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App, emulated_models
from modelrouter_server.config import RouterConfig, load_config
from modelrouter_server.emulator import Emulator
from modelrouter_server.observability import configure_logging
from modelrouter_server.tenancy import key_digest, new_key

from bench.stats import Summary

MODEL = "gpt-4o-mini-2024-07-18"
TENANTS = 20
"""Configured tenants (one key each): the check compares against every digest."""


def _config(auth: bool, keys: list[str]) -> RouterConfig:
    base = load_config().model_dump(mode="json")
    base["server"].update(metrics_port=0)
    base["context"]["store"] = "memory"
    if auth:
        base["auth"] = {"mode": "api_key"}
        base["tenants"] = {
            f"tenant{i}": {"api_key_sha256": key_digest(key)} for i, key in enumerate(keys)
        }
    return RouterConfig.model_validate(base)


Rpc = Callable[[AsyncModelRouterClient], Awaitable[Any]]


async def _timed(rpc: Rpc, client: AsyncModelRouterClient, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await rpc(client)
        samples.append(time.perf_counter() - started)
    return samples


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:8.0f}"


async def main(calls: int, rounds: int) -> None:
    configure_logging(json=False, level="error")
    keys = [new_key() for _ in range(TENANTS)]
    async with Emulator(emulated_models(load_config())) as emulator:
        apps = {
            name: await App.start(
                _config(auth, keys), env={}, host="127.0.0.1", port=0, emulator=emulator
            )
            for name, auth in (("off", False), ("on", True))
        }
        clients = {
            "off": AsyncModelRouterClient(f"127.0.0.1:{apps['off'].port}"),
            "on": AsyncModelRouterClient(f"127.0.0.1:{apps['on'].port}", api_key=keys[-1]),
        }
        rpcs: dict[str, Rpc] = {
            "ListModels": lambda c: c.list_models(),
            "Generate": lambda c: c.generate(
                "Hi", model=MODEL, disable_fallback=True, max_output_tokens=16
            ),
        }
        samples: dict[tuple[str, str], list[float]] = {}
        try:
            for client in clients.values():  # warm up connections and caches
                for rpc in rpcs.values():
                    await _timed(rpc, client, 50)
            per_round = max(calls // rounds, 1)
            for _ in range(rounds):
                for rpc_name, rpc in rpcs.items():
                    for mode, client in clients.items():
                        samples.setdefault((rpc_name, mode), []).extend(
                            await _timed(rpc, client, per_round)
                        )
        finally:
            for client in clients.values():
                await client.close()
            for app in apps.values():
                await app.stop(grace_s=0)
    print(f"auth overhead, {TENANTS} tenants configured, microseconds per call")
    print(f"{'rpc':<11} {'auth':<4} {'calls':>6} {'p50':>8} {'p99':>8}")
    for rpc_name in rpcs:
        off = Summary.of(samples[(rpc_name, "off")])
        on = Summary.of(samples[(rpc_name, "on")])
        for mode, summary in (("off", off), ("on", on)):
            print(
                f"{rpc_name:<11} {mode:<4} {summary.count:>6} {_us(summary.p50)} {_us(summary.p99)}"
            )
        print(f"{rpc_name:<11} {'diff':<4} {'':>6} {_us(on.p50 - off.p50)} {_us(on.p99 - off.p99)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="calls per RPC and mode")
    parser.add_argument("--rounds", type=int, default=10, help="alternations between modes")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
