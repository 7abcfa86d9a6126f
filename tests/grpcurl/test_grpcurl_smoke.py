"""scripts/grpcurl_smoke.sh against `modelrouter serve`: the README's grpcurl commands
work as documented, and a short ghz run sees no errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from modelrouter_testsupport.router_process import RouterProcess

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "grpcurl_smoke.sh"
TOOLS = ROOT / ".tools" / "bin"


@pytest.mark.skipif(
    not all(os.access(TOOLS / tool, os.X_OK) for tool in ("grpcurl", "ghz")),
    reason="grpcurl/ghz not built: run 'make tools' (needs Go)",
)
def test_readme_grpcurl_commands_and_a_clean_ghz_run(router: RouterProcess) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), router.target],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all checks passed against {router.target}" in result.stdout
    assert "FAIL" not in result.stdout
