"""Images in messages: their size from the file header, the limits they must meet, and
the input tokens each provider's published formula charges for them.

The formulas (what the providers document):
- Anthropic: an image whose long edge is over 1568 px is scaled down to it, then one
  that would still cost over about 1600 tokens is scaled to that area; it costs
  width * height / 750 tokens.
- OpenAI: `low` detail costs a fixed base; `high` (and `auto`, counted as high so the
  count is an upper bound) scales the image to fit 2048 x 2048, then its short side to
  768, and costs the base plus a per-tile price for each 512 px tile. The base and tile
  prices are the model's (`[models.X] image_tokens`).
A URL image's size is not known without fetching it, so it is counted at the most its
formula can charge.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from modelrouter_server.domain import ImagePart

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""Anthropic's per-image limit (OpenAI takes 20 MB): one rule for every model keeps
fallbacks open."""
MAX_IMAGE_SIDE = 8000
"""Anthropic's largest accepted width or height, in pixels."""

_ANTHROPIC_LONG_EDGE = 1568
_ANTHROPIC_MAX_TOKENS = 1600
_ANTHROPIC_PIXELS_PER_TOKEN = 750


@dataclass(frozen=True, slots=True)
class ImageSize:
    media_type: str
    width: int
    height: int


class ImageError(ValueError):
    """Bytes that are not an image of a supported type, or one out of limits."""


def image_size(data: bytes) -> ImageSize:
    """The type and pixel size of a JPEG, PNG, GIF or WebP image, from its header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return ImageSize("image/png", width, height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageSize("image/gif", width, height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    raise ImageError("not a JPEG, PNG, GIF or WebP image")


def _jpeg_size(data: bytes) -> ImageSize:
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            raise ImageError("a JPEG whose header does not parse")
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        # Start-of-frame markers carry the size; C4, C8 and CC are other tables.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return ImageSize("image/jpeg", width, height)
        at += 2 + length
    raise ImageError("a JPEG without a frame header")


def _webp_size(data: bytes) -> ImageSize:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return ImageSize("image/webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return ImageSize("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageSize("image/webp", width, height)
    raise ImageError("a WebP whose header does not parse")


def check_image(part: ImagePart) -> ImageSize | None:
    """The image's size (None for a URL); `ImageError` saying what is wrong."""
    if part.url:
        return None
    if len(part.data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{len(part.data)} bytes; at most {MAX_IMAGE_BYTES}")
    size = image_size(part.data)
    if size.media_type != part.media_type:
        raise ImageError(f"the data is {size.media_type}, not {part.media_type}")
    if not (0 < size.width <= MAX_IMAGE_SIDE and 0 < size.height <= MAX_IMAGE_SIDE):
        raise ImageError(
            f"{size.width} x {size.height} px; each side must be 1 to {MAX_IMAGE_SIDE} px"
        )
    return size


def anthropic_image_tokens(size: ImageSize | None) -> int:
    """Claude's charge for one image (its most, for a URL)."""
    if size is None:
        return _ANTHROPIC_MAX_TOKENS
    width, height = float(size.width), float(size.height)
    long_edge = max(width, height)
    if long_edge > _ANTHROPIC_LONG_EDGE:
        scale = _ANTHROPIC_LONG_EDGE / long_edge
        width, height = width * scale, height * scale
    return min(math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN), _ANTHROPIC_MAX_TOKENS)


def openai_image_tokens(size: ImageSize | None, detail: str, base: int, tile: int) -> int:
    """A Chat Completions model's charge for one image at `detail` (its most, for a URL
    or `auto` when the size is unknown)."""
    if detail == "low":
        return base
    if size is None:
        # The most tiles the scaling can leave: 768 x 2048 is 2 x 4.
        return base + tile * 8
    width, height = float(size.width), float(size.height)
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return base + tile * tiles
