"""How the router holds up under hostile load, against a real `modelrouter serve` process
and an emulator in its own process (so the router's RSS and event loop are its own):

- event loop: ListModels latency (p50/p99) while a 20 MB prompt of one repeated character
  is handled by Generate and by CreateConversation;
- backpressure: the RSS the router adds while 200 clients hold 64k-token streams open
  without reading them;
- admission: the status counts of 4,000 concurrent calls against limits of 1,000.

Run with `python -m bench.load.overload` (`--only loop|backpressure|admission`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2
from modelrouter_client import AsyncModelRouterClient, pb
from modelrouter_testsupport.emulator_admin import set_behavior
from modelrouter_testsupport.router_process import RouterProcess, start_router, stop_router

from bench.emulator_process import start_emulator, stop_emulator
from bench.stats import percentile

_BIG = 20 * 1024 * 1024
_MIB = 1024 * 1024
_BIG_LIMITS = {
    "limits": {
        "max_message_bytes": 32 * _MIB,
        "max_request_bytes": 64 * _MIB,
        "max_response_bytes": 64 * _MIB,
    }
}
# 200 streams start at once against one emulator process: give their first tokens time.
_PATIENT = {"resilience": {"ttft_timeout_s": 300.0, "inter_token_timeout_s": 300.0}}
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _probe_list_models(
    client: AsyncModelRouterClient, done: asyncio.Event, samples: list[float]
) -> None:
    while not done.is_set():
        started = time.perf_counter()
        # A probe that times out still counts, with the time it waited.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await client.list_models(timeout=30)
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.005)


async def _big_call(target: str, name: str) -> str:
    """One Generate or CreateConversation with a 20 MB prompt; its status code's name."""
    message = pb.Message(role=pb.ROLE_USER, content="a" * _BIG)
    channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
    async with AsyncModelRouterClient(channel=channel) as big:
        try:
            if name == "Generate":
                await big.generate([message], model="claude-3-7-sonnet", timeout=300)
            else:
                reply = pb.Message(role=pb.ROLE_ASSISTANT, content="Noted.")
                await big.create_conversation([message, reply], timeout=300)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


def _big_call_in_child(target: str, name: str) -> str:
    return asyncio.run(_big_call(target, name))


async def _loop_case(router: RouterProcess, name: str, *, own_process: bool = True) -> None:
    """ListModels latency while a 20 MB call runs. With `own_process` the big call runs in
    a child process: encoding its 20 MB request and decoding its reply then cannot stall
    this process's loop, and the figures are the router's alone."""
    async with AsyncModelRouterClient(router.target) as probe:
        await probe.list_models(timeout=10)
        samples: list[float] = []
        done = asyncio.Event()
        prober = asyncio.create_task(_probe_list_models(probe, done, samples))
        started = time.perf_counter()
        if own_process:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                code = await asyncio.get_running_loop().run_in_executor(
                    pool, _big_call_in_child, router.target, name
                )
        else:
            code = await _big_call(router.target, name)
        elapsed = time.perf_counter() - started
        done.set()
        await prober
    where = "in its own process" if own_process else "in the probe's process"
    print(
        f"  {name} with a 20 MB prompt ({where}): {code} after {elapsed:.2f} s; concurrent "
        f"ListModels n={len(samples)} p50={percentile(samples, 50) * 1000:.1f} ms "
        f"p99={percentile(samples, 99) * 1000:.1f} ms max={max(samples) * 1000:.1f} ms"
    )


class _Starts:
    """Counts streams whose start was answered (or failed); `all_done` when every one was."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started = 0
        self.failed = 0
        self.all_done = asyncio.Event()

    def note(self, *, ok: bool) -> None:
        if ok:
            self.started += 1
        else:
            self.failed += 1
        if self.started + self.failed >= self.expected:
            self.all_done.set()


async def _hold_stream(
    target: str,
    gate: asyncio.Semaphore,
    starts: _Starts,
    release: asyncio.Event,
    options: list[tuple[str, int]],
) -> None:
    """Open a 64k-token stream, read its start event, then never read again until
    `release`."""
    channel = grpc.aio.insecure_channel(target, options=options)
    async with AsyncModelRouterClient(channel=channel) as client:
        stream = client.stream(
            "Write a very long answer.",
            model="claude-3-7-sonnet",
            max_output_tokens=64000,
            disable_fallback=True,
            timeout=900,
        )
        try:
            async with gate:
                await anext(stream)  # the start event: the stream is open upstream
        except grpc.aio.AioRpcError as error:
            print(f"    a stream failed to start: {error.code().name} {error.details()}")
            starts.note(ok=False)
            return
        starts.note(ok=True)
        await release.wait()
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator


async def _sample_rss(pid: int, until: asyncio.Event, peak: list[float]) -> None:
    while not until.is_set():
        peak[0] = max(peak[0], rss_mib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), 0.5)


async def _backpressure(
    router: RouterProcess, emulator_url: str, clients: int, *, bdp: bool
) -> None:
    set_behavior(emulator_url, {"output_tokens": 64000, "thinking_tokens": 0})
    pid = router.process.pid
    before = rss_mib(pid)
    peak = [before]
    starts, release = _Starts(clients), asyncio.Event()
    # 20 starts at a time: the emulator renders each answer when its request arrives.
    gate = asyncio.Semaphore(20)
    # With BDP probing (grpc's default) a client's transport grows its window and takes
    # much of an answer into its own memory; without, it stops at 64 KB.
    options = [] if bdp else [("grpc.http2.bdp_probe", 0)]
    sampler = asyncio.create_task(_sample_rss(pid, release, peak))
    holders = [
        asyncio.create_task(_hold_stream(router.target, gate, starts, release, options))
        for _ in range(clients)
    ]
    await starts.all_done.wait()
    # 10 s more: long enough for a router that kept pulling unread answers to buffer them.
    await asyncio.sleep(10)
    after = rss_mib(pid)
    release.set()
    await asyncio.gather(*holders, return_exceptions=True)
    await sampler
    print(
        f"  {clients} clients ({'BDP' if bdp else '64 KB window'}) that stop reading "
        f"64k-token streams ({starts.started} started, "
        f"{starts.failed} failed): router RSS {before:.0f} MiB before, {after:.0f} MiB "
        f"10 s after the last start, peak {peak[0]:.0f} MiB (+{peak[0] - before:.0f} MiB)"
    )


def _has_retry_info(error: grpc.aio.AioRpcError) -> bool:
    # grpc-stubs types a metadatum as opaque; at run time it is a (key, value) pair.
    pairs: tuple[tuple[str, str | bytes], ...] = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
    for key, value in pairs:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    return False


async def _admission(router: RouterProcess, emulator_url: str, calls: int) -> None:
    set_behavior(emulator_url, {"latency_s": 5.0})
    counts: collections.Counter[str] = collections.Counter()
    samples: dict[str, str] = {}
    retry_info = 0

    async def one(client: AsyncModelRouterClient) -> None:
        nonlocal retry_info
        try:
            await client.generate("Hello", model="gpt-4o-mini", disable_fallback=True, timeout=60)
            counts["OK"] += 1
        except grpc.aio.AioRpcError as error:
            counts[error.code().name] += 1
            samples.setdefault(error.code().name, error.details() or "")
            retry_info += _has_retry_info(error)

    clients = [AsyncModelRouterClient(router.target) for _ in range(8)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(clients[i % len(clients)]) for i in range(calls)))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.close()
    summary = ", ".join(f"{code} {n}" for code, n in counts.most_common())
    print(
        f"  {calls} concurrent Generate against a limit of 1,000 RPCs (upstream 5 s): "
        f"{summary} in {elapsed:.1f} s; "
        f"carrying a RetryInfo: {retry_info}"
    )
    for code, details in samples.items():
        print(f"    {code}: {details[:120]}")


async def _run(only: str | None, workdir: Path, *, bdp: bool) -> None:
    emulator = start_emulator(workdir / "emulator.log")
    try:
        if only in (None, "loop"):
            router = start_router(workdir / "defaults", emulator_url=emulator.base_url)
            try:
                print("event loop, default limits (a 20 MB request is over max_request_bytes):")
                await _loop_case(router, "Generate")
            finally:
                stop_router(router)
            # The default limits refuse a 20 MB request at the transport; raised here so
            # that the whole request path (validation, counting, storing) runs.
            router = start_router(
                workdir / "loop", emulator_url=emulator.base_url, overrides=_BIG_LIMITS
            )
            try:
                print("event loop, limits raised to 32 MiB a message:")
                await _loop_case(router, "Generate")
                await _loop_case(router, "CreateConversation")
                # The probe sharing a loop with the 20 MB client, as this bench first
                # measured: what a client's own encoding and decoding add.
                await _loop_case(router, "CreateConversation", own_process=False)
            finally:
                stop_router(router)
        if only in (None, "backpressure"):
            router = start_router(
                workdir / "backpressure", emulator_url=emulator.base_url, overrides=_PATIENT
            )
            try:
                print("backpressure:")
                await _backpressure(router, emulator.base_url, 200, bdp=bdp)
            finally:
                stop_router(router)
        if only in (None, "admission"):
            print("admission:")
            limited = start_router(
                workdir / "limited",
                emulator_url=emulator.base_url,
                provider_connections=1000,
                overrides={
                    "admission": {"max_concurrent_rpcs": 1000, "max_concurrent_streams": 1000}
                },
            )
            try:
                await _admission(limited, emulator.base_url, 4000)
            finally:
                stop_router(limited)
    finally:
        stop_emulator(emulator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("loop", "backpressure", "admission"))
    parser.add_argument(
        "--no-bdp",
        action="store_true",
        help="non-reading clients keep gRPC's 64 KB stream window (no BDP probing)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelrouter-overload-") as workdir:
        asyncio.run(_run(args.only, Path(workdir), bdp=not args.no_bdp))


if __name__ == "__main__":
    main()
