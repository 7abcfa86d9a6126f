"""`modelrouter serve --workers 2`: a supervisor and two workers sharing one port.

The router runs as the real command on port 0 (the supervisor chooses the port and logs
it), with JSON logs on a pipe: the tests wait on its log events (a worker ready, a worker
gone, the shutdown), never on sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc
from modelrouter_client import pb, user
from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import free_port, modelrouter_command, write_config
from prometheus_client.parser import text_string_to_metric_families

from .test_metrics_documented import documented_series

Event = dict[str, Any]
WAIT_S = 120.0  # generous: worker start-up imports the whole stack, on a loaded machine
# Separate connections: without a local subchannel pool grpc shares one between channels.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


class Router:
    """`modelrouter serve --workers 2 --port 0` with its log events on a queue."""

    def __init__(self, directory: Path) -> None:
        self.metrics_port = free_port()
        emulator_port = free_port()
        config = write_config(
            directory,
            metrics_port=self.metrics_port,
            emulator_port=emulator_port,
            workers=2,
            overrides={"server": {"log_format": "json", "shutdown_grace_s": 0.5}},
        )
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        self.events: list[Event] = []
        self._new: queue.Queue[Event | None] = queue.Queue()
        self.process = subprocess.Popen(
            [*modelrouter_command(), "serve", "--config", str(config), "--port", "0",
             "--workers", "2"],
            cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        serving = self.wait_for(lambda e: e["event"] == "serving" and "worker" not in e)
        self.target = serving["address"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self._new.put(json.loads(raw))
            except ValueError:
                self._new.put({"event": "text", "text": raw.decode(errors="replace")})
        self._new.put(None)  # the router's output ended: it exited

    def wait_for(self, wanted: Callable[[Event], bool]) -> Event:
        """The first event, from now on, that `wanted` accepts."""
        while True:
            try:
                event = self._new.get(timeout=WAIT_S)
            except queue.Empty:
                raise AssertionError(f"no such event in {WAIT_S} s: {self.events}") from None
            if event is None:
                raise AssertionError(f"the router exited: {self.events}")
            self.events.append(event)
            if wanted(event):
                return event

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> pid, as the last `worker_ready` of each said."""
        ready = [e for e in self.events if e["event"] == "worker_ready"]
        return {e["worker"]: e["pid"] for e in ready}

    def scrape(self) -> dict[str, float]:
        """Sample name (with its labels) -> value, from the supervisor's /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}"] = sample.value
        return out

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=WAIT_S)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    router = Router(tmp_path)
    try:
        yield router
    finally:
        if router.process.poll() is None:
            router.process.kill()
            router.process.wait()


def _generate_each_on_its_own_connection(target: str, calls: int) -> None:
    for _ in range(calls):
        with grpc.insecure_channel(target, options=OWN_CONNECTION) as channel:
            stub = pb_grpc.ModelRouterServiceStub(channel)
            request = pb.GenerateRequest(messages=[user("Hi")], model="gpt-4o-mini")
            assert stub.Generate(request, timeout=60).text


def _generated(scrape: dict[str, float]) -> float:
    return sum(
        value
        for name, value in scrape.items()
        if name.startswith("modelrouter_requests_total{") and "rpc=Generate" in name
    )


def test_two_workers_serve_add_up_their_metrics_and_outlive_a_killed_one(
    router: Router,
) -> None:
    # One router for three checks: each start-up costs seconds of imports per worker.
    calls = 20
    _generate_each_on_its_own_connection(router.target, calls)
    done = [router.wait_for(lambda e: e["event"] == "request_done") for _ in range(calls)]
    # 20 connections spread by the kernel: both workers served (1 in 2^19 that they do not).
    assert {e["worker"] for e in done} == {0, 1}
    scrape = router.scrape()
    assert _generated(scrape) == calls
    durations = (
        "modelrouter_request_duration_seconds_count{model=gpt-4o-mini-2024-07-18,rpc=Generate}"
    )
    assert scrape[durations] == calls
    assert scrape["modelrouter_inflight_streams{}"] == 0
    # Multiprocess mode serves the documented series, and nothing undocumented.
    docs = documented_series()
    served = {name.partition("{")[0] for name in scrape}
    assert not {n for n in served if re.sub(r"_(count|sum|bucket)$", "", n) not in docs}

    killed = router.worker_pids()[0]
    os.kill(killed, signal.SIGKILL)
    gone = router.wait_for(lambda e: e["event"] == "worker_exited")
    assert (gone["worker"], gone["pid"], gone["code"]) == (0, killed, -signal.SIGKILL)
    back = router.wait_for(lambda e: e["event"] == "worker_ready" and e["worker"] == 0)
    assert back["pid"] != killed
    _generate_each_on_its_own_connection(router.target, 10)
    # The dead worker's counts stay in the sums (a counter never goes down).
    assert _generated(router.scrape()) == calls + 10
    assert router.stop() == 0


def test_a_busy_port_fails_in_the_supervisor_in_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, metrics_port=0, workers=2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*modelrouter_command(), "serve", "--config", str(config), "--port", str(port),
             "--workers", "2"],
            cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_S, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert "worker_started" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"modelrouter: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(router: Router) -> None:
    stall = {"output_tokens": 40, "stall_after_tokens": 1, "stall_s": 3600}
    emulator_admin.set_behavior(router.emulator_url, stall)
    channels = [grpc.insecure_channel(router.target, options=OWN_CONNECTION) for _ in range(6)]
    try:
        streams = []
        for channel in channels:
            stub = pb_grpc.ModelRouterServiceStub(channel)
            request = pb.GenerateStreamRequest(messages=[user("Go on.")], model="gpt-4o-mini")
            stream = stub.GenerateStream(request, timeout=60)
            assert next(iter(stream)).WhichOneof("event") == "start"
            streams.append(stream)
        router.process.send_signal(signal.SIGTERM)
        draining = [router.wait_for(lambda e: e["event"] == "draining") for _ in range(2)]
        assert {e["worker"] for e in draining} == {0, 1}
        assert sum(e["in_flight"] for e in draining) == len(streams)
        for stream in streams:  # past the grace, each ends with UNAVAILABLE, not a reset
            with pytest.raises(grpc.RpcError) as ended:
                for _ in stream:
                    pass
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        stopped = [router.wait_for(lambda e: e["event"] == "worker_stopped") for _ in range(2)]
        assert {(e["worker"], e["code"]) for e in stopped} == {(0, 0), (1, 0)}
        assert router.process.wait(timeout=WAIT_S) == 0
    finally:
        for channel in channels:
            channel.close()
