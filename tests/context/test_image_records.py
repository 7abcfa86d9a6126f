"""Stored parts name image bytes by hash; parts stored inline by earlier versions still
read back."""

from __future__ import annotations

import base64
import json

import pytest
from modelrouter_server.context._records import image_hash, parts_from_json, parts_to_json
from modelrouter_server.domain import ImagePart

DATA = b"\x89PNG-bytes"


def test_parts_name_the_image_by_hash_and_read_back_from_the_store() -> None:
    raw = parts_to_json([ImagePart(data=DATA, media_type="image/png")])

    assert base64.b64encode(DATA).decode() not in raw
    assert parts_from_json(raw, {image_hash(DATA): DATA}) == (
        ImagePart(data=DATA, media_type="image/png"),
    )
    with pytest.raises(ValueError, match="missing"):
        parts_from_json(raw, {})


def test_parts_stored_inline_before_still_read_back() -> None:
    inline = json.dumps(
        [{"image": {"data": base64.b64encode(DATA).decode(), "media_type": "image/png", "url": ""}}]
    )

    assert parts_from_json(inline) == (ImagePart(data=DATA, media_type="image/png"),)
