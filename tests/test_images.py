"""Image headers and the providers' published image-token formulas."""

from __future__ import annotations

import struct

import pytest
from modelrouter_server.domain import ImagePart
from modelrouter_server.images import (
    ImageError,
    ImageSize,
    anthropic_image_tokens,
    check_image,
    image_size,
    openai_image_tokens,
)
from modelrouter_testsupport.images import png


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp_vp8x(width: int, height: int) -> bytes:
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    body += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png(1000, 500), ImageSize("image/png", 1000, 500)),
        (gif(320, 240), ImageSize("image/gif", 320, 240)),
        (jpeg(1920, 1080), ImageSize("image/jpeg", 1920, 1080)),
        (webp_vp8x(4000, 3000), ImageSize("image/webp", 4000, 3000)),
    ],
)
def test_the_size_is_read_from_the_header(data: bytes, expected: ImageSize) -> None:
    assert image_size(data) == expected


def test_bytes_that_are_no_image_are_refused() -> None:
    with pytest.raises(ImageError, match="not a JPEG, PNG, GIF or WebP"):
        image_size(b"hello world, not an image")


def test_a_declared_type_that_is_not_the_datas_is_refused() -> None:
    with pytest.raises(ImageError, match="the data is image/png, not image/jpeg"):
        check_image(ImagePart(data=png(10, 10), media_type="image/jpeg"))


def test_an_image_too_large_is_refused() -> None:
    with pytest.raises(ImageError, match="each side must be"):
        check_image(ImagePart(data=png(9000, 10), media_type="image/png"))


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (1000, 500, 667),  # ceil(500000 / 750)
        (200, 200, 54),  # ceil(40000 / 750)
        (3136, 1568, 1600),  # long edge scaled to 1568 (1568 x 784 = 1640 -> capped)
        (1092, 1092, 1590),  # Anthropic's own example: about 1590 tokens
    ],
)
def test_anthropic_formula(width: int, height: int, tokens: int) -> None:
    assert anthropic_image_tokens(ImageSize("image/png", width, height)) == tokens


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 85 + 170 * 4),  # scaled to 768 x 768: 4 tiles (OpenAI's example)
        (2048, 4096, "high", 85 + 170 * 6),  # 1024 x 2048 -> 768 x 1536: 2 x 3 tiles
        (4096, 8192, "low", 85),
        (500, 300, "auto", 85 + 170 * 1),
    ],
)
def test_openai_tile_formula(width: int, height: int, detail: str, tokens: int) -> None:
    assert openai_image_tokens(ImageSize("image/png", width, height), detail, 85, 170) == tokens


def test_a_url_is_counted_at_the_most_it_can_cost() -> None:
    assert anthropic_image_tokens(None) == 1600
    assert openai_image_tokens(None, "high", 2833, 5667) == 2833 + 5667 * 8
