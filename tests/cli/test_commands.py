"""The one-shot subcommands (`models`, `generate`, `count-tokens`) run as an operator runs
them: the console script in a child process, against `modelrouter serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess

from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import RouterProcess, free_port, modelrouter_command


def modelrouter(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*modelrouter_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_models_prints_the_catalog_table(router: RouterProcess) -> None:
    result = modelrouter("models", "--target", router.target)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["MODEL", "PROVIDER"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {
        "claude-3-7-sonnet-20250219",
        "o3-mini-2025-01-31",
        "gpt-4o-mini-2024-07-18",
    }
    gpt = rows["gpt-4o-mini-2024-07-18"].split()
    assert gpt[1:6] == ["openai", "128,000", "16,384", "0.15", "0.60"]
    assert "closed" in gpt and "yes" in gpt  # circuit state, emulated


def test_generate_unary_prints_text_then_usage_on_stderr(
    router: RouterProcess, emulator_url: str
) -> None:
    emulator_admin.set_behavior(emulator_url, {"text": "Four."})
    result = modelrouter(
        "generate", "--target", router.target, "--task", "chat", "--max-output-tokens", "50",
        "What is 2+2?",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Four.\n"
    assert result.stderr.startswith("[gpt-4o-mini-2024-07-18 via openai | ")
    assert " in / " in result.stderr and "out tokens | $" in result.stderr
    body = emulator_admin.requests(emulator_url)[-1]["body"]
    # The OpenAI provider sends the cap as max_completion_tokens (the current name).
    assert isinstance(body, dict) and body["max_completion_tokens"] == 50


def test_generate_stream_reads_the_prompt_from_stdin(
    router: RouterProcess, emulator_url: str
) -> None:
    emulator_admin.set_behavior(emulator_url, {"text": "Streamed answer here."})
    result = modelrouter(
        "generate", "--target", router.target, "--stream", "--model", "claude-3-7-sonnet",
        stdin="Say something\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Streamed answer here.\n"
    assert result.stderr.startswith("[claude-3-7-sonnet-20250219 via anthropic | ttft ")
    assert "tok/s" in result.stderr


def test_generate_stream_json_prints_one_event_per_line(router: RouterProcess) -> None:
    result = modelrouter("generate", "--target", router.target, "--stream", "--json", "Hi")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert "start" in events[0] and "finish" in events[-1]
    assert any("delta" in e for e in events[1:-1])


def test_count_tokens_names_model_method_and_window(router: RouterProcess) -> None:
    result = modelrouter(
        "count-tokens", "--target", router.target, "--model", "gpt-4o-mini", "How long is this?"
    )
    assert result.returncode == 0, result.stderr
    assert re.match(r"\d+ input tokens on gpt-4o-mini-2024-07-18 ", result.stdout), result.stdout
    assert " input tokens on gpt-4o-mini-2024-07-18 (exact, local tokenizer; " in result.stdout
    assert "of its 128,000-token window)" in result.stdout


def test_rpc_errors_are_one_line_with_the_status(router: RouterProcess) -> None:
    result = modelrouter("generate", "--target", router.target, "--model", "no-such-model", "Hi")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"modelrouter: {router.target}: NOT_FOUND: ")
    assert len(result.stderr.splitlines()) == 1


def test_unreachable_router_fails_fast() -> None:
    target = f"127.0.0.1:{free_port()}"
    for command in ("models", "chat"):
        result = modelrouter(command, "--target", target, "--timeout", "5", stdin="")
        assert result.returncode == 1, (command, result.stderr)
        assert f"modelrouter: {target}: UNAVAILABLE: " in result.stderr


def test_generate_prints_a_refusal_and_says_it_was_one(
    router: RouterProcess, emulator_url: str
) -> None:
    refusal = "I'm sorry, I can't assist with that request."
    emulator_admin.set_behavior(emulator_url, {"refusal": refusal})
    for mode in ((), ("--stream",)):
        result = modelrouter(
            "generate", "--target", router.target, "--model", "gpt-4o-mini", *mode,
            "Do the forbidden thing.",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == refusal + "\n"
        assert result.stderr.startswith("[the model refused]\n[gpt-4o-mini-2024-07-18 via")


def test_a_reader_that_leaves_early_gets_no_traceback(router: RouterProcess) -> None:
    # `modelrouter models | head -2`, with the reader gone before the table is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*modelrouter_command(), "models", "--target", router.target],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""
