"""Driving a program in a real terminal: a detached tmux session on a private server.

Keys go in with `send-keys`; the screen comes back with `capture-pane`. Each terminal has
its own tmux server on a socket no other terminal uses (`tmux -L`, a random name): a server
still shutting down after one test never answers for the next, and no tmux the developer runs
is touched. tmux has no "text appeared" event, so `wait_for` re-reads the screen; the end of
the program is a real event (the pane's shell signals a `wait-for` channel).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence


class TmuxTimeout(AssertionError):
    """What the test waited for never showed on the screen."""


class Terminal:
    """One tmux pane running one command, `width` x `height` cells."""

    def __init__(self, name: str, *, width: int = 120, height: int = 40) -> None:
        self._socket = f"modelrouter-test-{os.getpid()}-{name}-{secrets.token_hex(4)}"
        self._session = name
        self.width, self.height = width, height

    def _tmux(self, *args: str, timeout_s: float = 10.0) -> str:
        result = subprocess.run(
            ["tmux", "-L", self._socket, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return result.stdout

    def start(self, command: Sequence[str], *, env: Mapping[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        self._tmux(
            "-f",
            "/dev/null",  # no user config: a known key table and status line
            "new-session",
            "-d",
            "-s",
            self._session,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            # The pane's shell signals the exit channel after the program ends; tmux
            # remembers a signal sent before anyone waits, so `wait_exited` cannot miss it.
            f"env {exports} {shlex.join(command)}; tmux wait-for -S {self._exit_channel}",
        )
        # Keep the pane (and its last screen) when the program exits, to read why.
        self._tmux("set-option", "-t", self._session, "remain-on-exit", "on")
        self._tmux("set-option", "-t", self._session, "status", "off")

    @property
    def _exit_channel(self) -> str:
        return f"{self._session}-exited"

    def type(self, text: str) -> None:
        """Type `text` literally (no key names)."""
        self._tmux("send-keys", "-t", self._session, "-l", text)

    def press(self, *keys: str) -> None:
        """Press keys by tmux name: Enter, C-c, C-d."""
        self._tmux("send-keys", "-t", self._session, *keys)

    def screen(self) -> str:
        """The visible screen plus scrollback, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", self._session)

    def visible_lines(self) -> list[str]:
        """Exactly the rows on screen now, top to bottom."""
        return self._tmux("capture-pane", "-p", "-t", self._session).split("\n")[: self.height]

    def exited(self) -> bool:
        return (
            self._tmux("display-message", "-p", "-t", self._session, "#{pane_dead}").strip() == "1"
        )

    def wait_exited(self, *, timeout_s: float = 60.0) -> None:
        """Block until the program has exited (TmuxTimeout after `timeout_s`)."""
        try:
            self._tmux("wait-for", self._exit_channel, timeout_s=timeout_s)
        except subprocess.TimeoutExpired:
            raise TmuxTimeout(
                f"the program still runs after {timeout_s:g} s:\n{self.screen()}"
            ) from None

    def wait_for(self, pattern: str, *, timeout_s: float = 60.0, count: int = 1) -> str:
        """Wait until `pattern` (a regex) matches the screen `count` times; returns it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if len(regex.findall(screen)) >= count:
                return screen
            if time.monotonic() > deadline:
                raise TmuxTimeout(
                    f"{pattern!r} (x{count}) not on screen after {timeout_s:g} s:\n{screen}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self._socket, "kill-server"], capture_output=True, check=False
        )
