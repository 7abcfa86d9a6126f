"""Images for tests that need real file headers, built here rather than stored as files."""

from __future__ import annotations

import struct
import zlib


def png(width: int, height: int) -> bytes:
    """A real (tiny-bodied) PNG of the given size: signature, IHDR, an IDAT, IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
