"""The docs' examples work as written.

- Every ```sh block of docs/grpcurl.md and the README's grpcurl block runs in bash against
  a live router (its address replaces 127.0.0.1:50051) and exits 0, or with the status a
  `# exit status: N` line in the block names.
- Every ```python block of docs/python.md, and the README's, runs as a script against the
  router.
- Every line of the ```go and ```ts blocks of docs/go.md and docs/typescript.md is a line of
  the example agent, which the Go and TypeScript test suites run against a live router.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from modelrouter_testsupport.router_process import RouterProcess

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DEFAULT_TARGET = "127.0.0.1:50051"
TOOLS = ROOT / ".tools" / "bin"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(path.read_text()) if lang == language]


def _readme_grpcurl_block() -> str:
    (block,) = [b for b in blocks(ROOT / "README.md", "sh") if "grpcurl" in b]
    return block


SHELL_EXAMPLES = [
    pytest.param(block, id=f"grpcurl.md[{i}]")
    for i, block in enumerate(blocks(DOCS / "grpcurl.md", "sh"))
] + [pytest.param(_readme_grpcurl_block(), id="README.md[grpcurl]")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory where the docs' relative paths (.tools, .venv) resolve, so the
    examples' output files (build/) do not land in the repository. Shared by the blocks,
    which run in order, as a reader would run them."""
    path = tmp_path_factory.mktemp("docs")
    for name in (".tools", ".venv"):
        (path / name).symlink_to(ROOT / name)
    return path


@pytest.mark.skipif(
    not all(os.access(TOOLS / tool, os.X_OK) for tool in ("grpcurl", "ghz")),
    reason="grpcurl/ghz not built: run 'make tools' (needs Go)",
)
@pytest.mark.parametrize("block", SHELL_EXAMPLES)
def test_shell_example_runs_as_written(block: str, router: RouterProcess, workdir: Path) -> None:
    assert DEFAULT_TARGET in block
    expected = re.search(r"^# exit status: (\d+)$", block, re.MULTILINE)
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.replace(DEFAULT_TARGET, router.target)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == (int(expected.group(1)) if expected else 0), (
        result.stdout + result.stderr
    )


def test_conversation_example_stores_the_turn(router: RouterProcess, workdir: Path) -> None:
    (block,) = [b for b in blocks(DOCS / "grpcurl.md", "sh") if "CreateConversation" in b]
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.replace(DEFAULT_TARGET, router.target)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert '"content": "Remember 7."' in result.stdout
    assert '"role": "ROLE_ASSISTANT"' in result.stdout


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(b, id=f"python.md[{i}]")
        for i, b in enumerate(blocks(DOCS / "python.md", "python"))
    ]
    + [
        pytest.param(b, id=f"README.md[python {i}]")
        for i, b in enumerate(blocks(ROOT / "README.md", "python"))
    ],
)
def test_python_example_runs_as_written(script: str, router: RouterProcess, tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(script.replace(DEFAULT_TARGET, router.target))
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip()


def test_python_examples_cover_the_four_cases() -> None:
    scripts = blocks(DOCS / "python.md", "python")
    assert len(scripts) == 4
    assert "max_output_tokens=-1" in scripts[2] and "conversation_id" in scripts[3]


@pytest.mark.parametrize(
    ("doc", "language", "source"),
    [
        ("go.md", "go", ROOT / "client/go/cmd/example-agent/main.go"),
        ("typescript.md", "ts", ROOT / "client/typescript/examples/agent.ts"),
    ],
)
def test_code_blocks_are_lines_of_the_tested_example(doc: str, language: str, source: Path) -> None:
    source_lines = {line.strip() for line in source.read_text().splitlines()}
    examples = blocks(DOCS / doc, language)
    assert len(examples) == 4
    for block in examples:
        for line in block.splitlines():
            assert line.strip() in source_lines, f"{doc}: not in {source.name}: {line!r}"
