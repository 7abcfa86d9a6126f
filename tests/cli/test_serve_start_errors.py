"""`modelrouter serve` on an address that is taken ends in one line naming it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from modelrouter_testsupport.router_process import free_port, modelrouter_command, write_config


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*modelrouter_command(), "serve", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_busy_grpc_port_is_one_line_naming_the_address(tmp_path: Path) -> None:
    config = write_config(tmp_path, metrics_port=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, "--config", str(config), "--port", str(port))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"modelrouter: cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_busy_metrics_port_is_one_line_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        config = write_config(tmp_path, metrics_port=metrics_port)
        result = serve(tmp_path, "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"modelrouter: cannot serve metrics on 127.0.0.1:{metrics_port}: ")


def test_metrics_port_option_overrides_the_config(tmp_path: Path) -> None:
    # The config turns metrics off; --metrics-port asks for a taken port, so the start-up
    # fails naming that port: the option, not the config, chose it.
    config = write_config(tmp_path, metrics_port=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        result = serve(
            tmp_path,
            "--config", str(config),
            "--port", str(free_port()),
            "--metrics-port", str(metrics_port),
        )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"modelrouter: cannot serve metrics on 127.0.0.1:{metrics_port}: ")
    assert "--metrics-port" in last
