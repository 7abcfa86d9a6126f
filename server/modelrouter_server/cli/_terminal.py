"""Plain ANSI output: colours, and a status line pinned to the bottom of the terminal.

The status line works as apt's progress bar does: the scrolling region is set to every row
but the last, so streamed text scrolls above it while the last row is redrawn in place.
Everything is skipped when the output is not a terminal, or with `--plain` / NO_COLOR.
"""

from __future__ import annotations

import os
from typing import TextIO

_CSI = "\x1b["
_SAVE_CURSOR = "\x1b7"
_RESTORE_CURSOR = "\x1b8"


def ansi_enabled(stream: TextIO, *, plain: bool) -> bool:
    """Whether to write escape sequences to `stream`."""
    if plain or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


class Style:
    """Wraps text in SGR sequences when enabled, else returns it unchanged."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def _sgr(self, code: str, text: str) -> str:
        return f"{_CSI}{code}m{text}{_CSI}0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._sgr("1", text)

    def dim(self, text: str) -> str:
        return self._sgr("2", text)

    def cyan(self, text: str) -> str:
        return self._sgr("36", text)

    def green(self, text: str) -> str:
        return self._sgr("32", text)

    def yellow(self, text: str) -> str:
        return self._sgr("33", text)

    def red(self, text: str) -> str:
        return self._sgr("31", text)

    def readline_safe(self, text: str) -> str:
        """`text` for an `input()` prompt: readline must be told which bytes print nothing
        (between \\001 and \\002), or it miscounts the prompt's width and garbles editing."""
        if not self.enabled:
            return text
        out = []
        i = 0
        while i < len(text):
            if text.startswith(_CSI, i):
                end = text.index("m", i) + 1
                out.append("\001" + text[i:end] + "\002")
                i = end
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


class StatusBar:
    """One line on the terminal's last row that stays put while the text above scrolls."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._rows = 0
        self._text = ""

    def _size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self._stream.fileno())
        except (OSError, ValueError):
            return 0, 0
        return size.lines, size.columns

    def open(self) -> None:
        """Reserve the last row. A terminal under four rows gets no status line."""
        if not self._enabled:
            return
        rows, _ = self._size()
        if rows < 4:
            self._enabled = False
            return
        # The newline makes room below the cursor (scrolling if it is on the last row), so
        # shrinking the region does not strand the cursor outside it.
        self._stream.write(f"\n{_SAVE_CURSOR}{_CSI}1;{rows - 1}r{_RESTORE_CURSOR}{_CSI}1A")
        self._stream.flush()
        self._rows = rows

    def show(self, text: str) -> None:
        """Replace the status line's text (cut to the terminal's width)."""
        self._text = text
        if not self._enabled or not self._rows:
            return
        rows, columns = self._size()
        if rows != self._rows:
            # Resized: the old region no longer ends above the last row.
            self._rows = 0
            self.open()
            if not self._rows:
                return
        visible = text if columns <= 0 else _cut(text, columns - 1)
        self._stream.write(f"{_SAVE_CURSOR}{_CSI}{self._rows};1H{_CSI}2K{visible}{_RESTORE_CURSOR}")
        self._stream.flush()

    def close(self) -> None:
        """Give the whole screen back to scrolling and clear the status line."""
        if not self._enabled or not self._rows:
            return
        rows, _ = self._size()
        rows = rows or self._rows
        self._stream.write(f"{_SAVE_CURSOR}{_CSI}1;{rows}r{_CSI}{rows};1H{_CSI}2K{_RESTORE_CURSOR}")
        self._stream.flush()
        self._rows = 0


def _cut(text: str, width: int) -> str:
    """`text` shortened to `width` printable characters, keeping its escape sequences."""
    out: list[str] = []
    printable = 0
    i = 0
    while i < len(text):
        if text.startswith(_CSI, i):
            end = text.find("m", i)
            end = len(text) if end < 0 else end + 1
            out.append(text[i:end])
            i = end
            continue
        if printable >= width:
            out.append(f"{_CSI}0m")
            break
        out.append(text[i])
        printable += 1
        i += 1
    return "".join(out)
