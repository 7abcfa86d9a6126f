"""LiteLLM proxy, the comparison column: its own virtualenv, one worker, the stand-in.

`make bench` installs it into .tools/litellm-venv from bench/litellm-requirements.txt
(exact pins); it is never a dependency of modelrouter. When it is missing or does not
start, `start` raises `LiteLLMUnavailable` with the reason and the bench goes on without it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from modelrouter_testsupport.child_process import terminate
from modelrouter_testsupport.router_process import free_port

from bench.machine import tree_cpu_s, tree_rss_bytes

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".tools" / "litellm-venv"
INSTALLED = VENV / ".installed"
INSTALL_LOG = ROOT / ".tools" / "litellm-venv.log"
MODEL = "standin-model"


class LiteLLMUnavailable(Exception):
    """LiteLLM is not installed or did not start; the message says why."""


@dataclass(frozen=True)
class LiteLLMProxy:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    master_key: str = field(repr=False)
    version: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.process.pid)

    def cpu_s(self) -> float:
        return tree_cpu_s(self.process.pid)


def installed_version() -> str:
    """The installed litellm version; raises `LiteLLMUnavailable` when it is not installed."""
    if not INSTALLED.exists():
        reason = "not installed (`make bench` installs it into .tools/litellm-venv)"
        if INSTALL_LOG.exists():
            tail = INSTALL_LOG.read_text(errors="replace").strip().splitlines()[-3:]
            reason = "could not be installed: " + " / ".join(tail)
        raise LiteLLMUnavailable(reason)
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; "
         "print(m.version('litellm'))"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        raise LiteLLMUnavailable(f"its virtualenv is broken: {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def _config(directory: Path, standin_base_url: str) -> Path:
    path = directory / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {standin_base_url}\n"
        "      api_key: bench-not-a-key\n"
        "litellm_settings:\n"
        "  telemetry: false\n",
        encoding="utf-8",
    )
    return path


def start(directory: Path, standin_base_url: str, *, timeout_s: float = 120.0) -> LiteLLMProxy:
    """Start `litellm --num_workers 1` on a free port; returns once it answers."""
    version = installed_version()
    directory = directory.resolve()  # the child runs in it and is handed paths inside it
    directory.mkdir(parents=True, exist_ok=True)
    config = _config(directory, standin_base_url)
    port = free_port()
    # LiteLLM refuses to start without a master key; a throwaway one for this run.
    master_key = "sk-bench-" + secrets.token_hex(16)
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": master_key,
        # The model price map ships with the package: no fetch from the internet.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    log_path = directory / "litellm.log"
    command = [str(VENV / "bin" / "litellm"), "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    proxy = LiteLLMProxy(port, process, log_path, master_key, version)
    try:
        _wait_alive(proxy, timeout_s)
    except BaseException:
        stop(proxy)
        raise
    return proxy


def _wait_alive(proxy: LiteLLMProxy, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{proxy.port}/health/liveliness"
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            tail = proxy.log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise LiteLLMUnavailable("exited at start: " + " / ".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)  # still starting (it takes ~15 s)
    raise LiteLLMUnavailable(f"did not answer within {timeout_s:g} s")


def stop(proxy: LiteLLMProxy) -> None:
    terminate(proxy.process, grace_s=15)
