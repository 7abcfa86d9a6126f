"""`modelrouter chat` in a real terminal (tmux) against `modelrouter serve` on its emulator:
tokens appear as they stream, the stats line follows, and Ctrl-C cancels a reply (and the
upstream request) without ending the session."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator

import pytest
from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import RouterProcess, modelrouter_command

from .tmux import Terminal

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)"
)

PROMPT = r"you> "
# [gpt-4o-mini-2024-07-18 via openai | ttft 12 ms | 48.2 tok/s | 9 in / 6 out tokens | $0.000005]
STATS = (
    r"\[gpt-4o-mini-2024-07-18 via openai \| ttft [\d.]+ m?s \| [\d.]+ tok/s"
    r" \| \d+ in / \d+ out tokens \| \$[\d.]+\]"
)


@pytest.fixture
def terminal(router: RouterProcess) -> Iterator[Terminal]:
    term = Terminal("chat")
    env = {
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    term.start([*modelrouter_command(), "chat", "--target", router.target], env=env)
    try:
        term.wait_for(PROMPT)
        yield term
    finally:
        term.kill()


def last_line(term: Terminal, above_status: bool = True) -> str:
    """The last non-empty row of the scrolling area (the status line is the bottom row)."""
    rows = term.visible_lines()
    rows = rows[:-1] if above_status else rows
    return next((r for r in reversed(rows) if r.strip()), "")


def test_reply_streams_with_model_and_stats(terminal: Terminal, emulator_url: str) -> None:
    emulator_admin.set_behavior(
        emulator_url, {"text": "Pong: the router answered.", "tokens_per_second": 50}
    )
    terminal.type("Hello router")
    terminal.press("Enter")
    screen = terminal.wait_for(STATS)
    assert re.search(r"gpt-4o-mini-2024-07-18: Pong: the router answered\.", screen), screen
    # Back at the prompt, and the status line on the bottom row reports the session.
    terminal.wait_for(PROMPT, count=2)
    status = terminal.visible_lines()[-1]
    assert "model auto | task chat | 1 replies | session $" in status, status

    # The history is kept client-side: the second turn sends both user messages.
    terminal.type("And again")
    terminal.press("Enter")
    terminal.wait_for(STATS, count=2)
    bodies = [r["body"] for r in emulator_admin.requests(emulator_url)]
    last = bodies[-1]
    assert isinstance(last, dict)
    contents = [m["content"] for m in last["messages"]]
    assert contents == ["Hello router", "Pong: the router answered.", "And again"]


def test_ctrl_c_cancels_the_reply_and_returns_to_the_prompt(
    terminal: Terminal, emulator_url: str
) -> None:
    # 2,000 tokens at 5 per second: a 400-second reply, cancelled after its first tokens.
    emulator_admin.set_behavior(emulator_url, {"tokens_per_second": 5, "output_tokens": 2000})
    terminal.type("Tell me a long story")
    terminal.press("Enter")
    terminal.wait_for(r"gpt-4o-mini-2024-07-18: +\S+ \S+")
    assert "streaming gpt-4o-mini-2024-07-18" in terminal.visible_lines()[-1]
    terminal.press("C-c")
    # The reply had minutes to go: seeing the prompt again within the wait is the cancel.
    terminal.wait_for(r"\[reply cancelled\]", timeout_s=60)
    terminal.wait_for(PROMPT, count=2, timeout_s=60)
    assert last_line(terminal).startswith("you>"), terminal.screen()
    assert not terminal.exited()

    # The cancel reached the provider: the emulator saw its client go away mid-answer.
    disconnects = emulator_admin.disconnects(emulator_url, count=1)
    assert len(disconnects) == 1, disconnects
    sent = disconnects[0]["tokens_sent"]
    assert isinstance(sent, int) and sent < 2000

    # The session goes on: a fast reply to the next prompt, without the cancelled turn.
    emulator_admin.set_behavior(emulator_url, {"text": "Still here."})
    terminal.type("Are you there?")
    terminal.press("Enter")
    screen = terminal.wait_for(STATS)
    assert "Still here." in screen
    last = emulator_admin.requests(emulator_url)[-1]["body"]
    assert isinstance(last, dict)
    assert [m["content"] for m in last["messages"]] == ["Are you there?"]


def test_ctrl_d_and_quit_end_the_session(router: RouterProcess) -> None:
    for keys in (("C-d",), ("/quit", "Enter")):
        term = Terminal("quit")
        term.start(
            [*modelrouter_command(), "chat", "--target", router.target],
            env={"TERM": "xterm-256color", "LANG": "C.UTF-8"},
        )
        try:
            term.wait_for(PROMPT)
            if keys[0].startswith("/"):
                term.type(keys[0])
                term.press(*keys[1:])
            else:
                term.press(*keys)
            term.wait_exited()  # raises, with the screen, if the program carries on
        finally:
            term.kill()
