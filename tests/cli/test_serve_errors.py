"""`modelrouter serve` with a store it cannot use: one line on stderr, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from modelrouter_server.config import default_config_path


def serve_with_store(tmp_path: Path, sqlite_path: Path) -> subprocess.CompletedProcess[str]:
    config = default_config_path().read_text()
    config = config.replace('sqlite_path = "modelrouter.db"', f'sqlite_path = "{sqlite_path}"')
    config = config.replace("port = 50051", "port = 0").replace(
        "metrics_port = 9464", "metrics_port = 0"
    )
    path = tmp_path / "router.toml"
    path.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "modelrouter_server.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("damage", ["garbage file", "vanished directory"])
def test_an_unusable_store_stops_start_up_with_one_line(tmp_path: Path, damage: str) -> None:
    if damage == "garbage file":
        db = tmp_path / "conversations.db"
        db.write_bytes(b"not a database " * 500)
    else:
        db = tmp_path / "gone" / "conversations.db"
    result = serve_with_store(tmp_path, db)
    assert result.returncode == 69
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("modelrouter:")]
    assert len(lines) == 1
    assert str(db) in lines[0] and "cannot open" in lines[0]
