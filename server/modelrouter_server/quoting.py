"""Quoting what a caller sent inside an error message or a log line, cut short.

A caller value can be megabytes long: echoed whole, it swells logs and can push a status
message past the client's metadata limit, so the client sees a transport error instead of
the real one. Every message that quotes a caller value goes through `quote`.
"""

from __future__ import annotations

QUOTE_LIMIT = 100
"""At most this many characters of a caller value appear in a message."""


def quote(value: str, limit: int = QUOTE_LIMIT) -> str:
    """`value` as a Python literal (control characters escaped), cut to `limit` characters
    with the full length noted when longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
