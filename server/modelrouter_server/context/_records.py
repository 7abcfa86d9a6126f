"""What the store implementations share: ids, timestamps, paging and argument checks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from modelrouter_server.context.store import AppendResult, StoredMessage, SummaryRecord
from modelrouter_server.domain import (
    ImagePart,
    Importance,
    Message,
    Part,
    Role,
    TextPart,
    ToolCall,
    ToolResult,
)
from modelrouter_server.errors import RequestError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def new_conversation_id() -> str:
    return uuid.uuid4().hex


class Stamps:
    """Microseconds since the epoch (integers sort, compare and store exactly everywhere),
    strictly increasing per store, so conversations created within one microsecond still
    list in creation order."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        self._last = max(int(datetime.now(UTC).timestamp() * 1_000_000), self._last + 1)
        return self._last


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def normalized_page_size(requested: int) -> int:
    """The page size to use: 0 means the default, more than the maximum is capped."""
    if requested < 0:
        raise RequestError("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(created_us: int, conversation_id: str) -> str:
    """An opaque cursor: the (created, id) of the last conversation on the page."""
    return base64.urlsafe_b64encode(f"{created_us}:{conversation_id}".encode()).decode()


MAX_STAMP_US = 10**17 - 1
"""The largest creation time a page token may name: beyond any real timestamp (year 5138),
inside SQLite's INTEGER and the Redis index's fixed-width members."""

_MAX_TOKEN_LENGTH = 512


def decode_page_token(token: str) -> tuple[int, str]:
    """The (created, id) a page token names. A token that does not parse or does not fit
    (a 30-digit time, an id no store could hold) is the caller's error, on every store."""
    try:
        if len(token) > _MAX_TOKEN_LENGTH:
            raise ValueError("too long")
        created, _, conversation_id = (
            base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        )
        if not conversation_id or not created.isascii() or not created.isdigit():
            raise ValueError("not <created>:<id>")
        created_us = int(created)
        if created_us > MAX_STAMP_US:
            raise ValueError("creation time out of range")
        return created_us, conversation_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise RequestError("page_token", "not a token from a previous response") from exc


def check_append(messages: Sequence[Message], tokens: Sequence[int] | None) -> tuple[int, ...]:
    """The token count of each message (0 when not given)."""
    if tokens is None:
        return (0,) * len(messages)
    if len(tokens) != len(messages):
        raise ValueError(f"{len(tokens)} token counts for {len(messages)} messages")
    return tuple(tokens)


def summary_applies(
    summary: SummaryRecord, next_seq: int, summarized: Mapping[int, int | None]
) -> bool:
    """True when every seq the summary replaces exists and no summary replaces it yet.

    False means a concurrent request summarized (some of) the same messages first; that
    summary stands and this one is dropped, so no message is ever replaced twice.
    """
    replaces = summary.replaces
    if not replaces or len(set(replaces)) != len(replaces):
        return False
    return all(0 <= seq < next_seq and summarized.get(seq) is None for seq in replaces)


# -- JSON forms (Redis values, SQLite metadata) ----------------------------------------------


def metadata_json(metadata: Mapping[str, str]) -> str:
    return json.dumps(dict(metadata), separators=(",", ":"), sort_keys=True)


def metadata_from_json(raw: str) -> dict[str, str]:
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("metadata is not a map of strings")
    return value


def message_fields(message: Message) -> dict[str, Any]:
    """A message's stored fields; image bytes by reference (see `parts_to_json`)."""
    fields: dict[str, Any] = {
        "role": message.role.value,
        "content": message.content,
        "pinned": message.pinned,
        "importance": int(message.importance),
    }
    if message.parts:
        fields["parts"] = parts_to_json(message.parts)
    return fields


def image_hash(data: bytes) -> str:
    """The key an image's bytes are stored under: their sha256, in hex."""
    return hashlib.sha256(data).hexdigest()


def image_blobs(messages: Sequence[Message]) -> dict[str, bytes]:
    """The image bytes the messages carry, by `image_hash` (each image once)."""
    return {
        image_hash(part.data): part.data
        for message in messages
        for part in message.parts
        if isinstance(part, ImagePart) and part.data
    }


def image_refs(raw_parts: str) -> set[str]:
    """The image hashes a message's stored parts (`parts_to_json`) refer to."""
    if not raw_parts or '"sha256"' not in raw_parts:
        return set()
    items = json.loads(raw_parts)
    if not isinstance(items, list):
        raise ValueError("parts is not a list")
    return {
        str(item["image"]["sha256"])
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("image"), dict)
        and "sha256" in item["image"]
    }


def message_from_fields(
    fields: Mapping[str, Any], images: Mapping[str, bytes] | None = None
) -> Message:
    """The message from its stored fields; `images` holds the bytes its image parts refer
    to by hash."""
    content = fields["content"]
    if not isinstance(content, str):
        raise ValueError("content is not a string")
    raw_parts = fields.get("parts") or ""
    return Message(
        role=Role(fields["role"]),
        content=content,
        pinned=bool(fields["pinned"]),
        importance=Importance(int(fields["importance"])),
        parts=parts_from_json(raw_parts, images) if raw_parts else (),
    )


def parts_to_json(parts: Sequence[Part]) -> str:
    """A message's parts as JSON text, the form every store keeps them in. Image bytes are
    not in it: an image names its bytes by `image_hash`, and the store keeps the bytes once
    however many messages (of any conversation) carry the same image."""
    items: list[dict[str, object]] = []
    for part in parts:
        if isinstance(part, TextPart):
            items.append({"text": part.text})
        elif isinstance(part, ImagePart):
            items.append(
                {
                    "image": {
                        "sha256": image_hash(part.data) if part.data else "",
                        "media_type": part.media_type,
                        "url": part.url,
                    }
                }
            )
        elif isinstance(part, ToolCall):
            items.append(
                {"tool_call": {"id": part.id, "name": part.name, "arguments": part.arguments}}
            )
        else:
            items.append(
                {
                    "tool_result": {
                        "tool_call_id": part.tool_call_id,
                        "content": part.content,
                        "is_error": part.is_error,
                    }
                }
            )
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def parts_from_json(raw: str, images: Mapping[str, bytes] | None = None) -> tuple[Part, ...]:
    """The parts `parts_to_json` wrote; image bytes come from `images` by hash (parts
    written before images were stored by hash carry their bytes inline, in "data")."""
    items = json.loads(raw)
    if not isinstance(items, list):
        raise ValueError("parts is not a list")
    parts: list[Part] = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ValueError("a part is not an object of one kind")
        ((kind, value),) = item.items()
        if kind == "text":
            parts.append(TextPart(str(value)))
        elif kind == "image":
            parts.append(
                ImagePart(
                    data=_image_data(value, images or {}),
                    media_type=str(value["media_type"]),
                    url=str(value["url"]),
                )
            )
        elif kind == "tool_call":
            arguments = value["arguments"]
            if not isinstance(arguments, dict):
                raise ValueError("tool call arguments are not an object")
            parts.append(ToolCall(str(value["id"]), str(value["name"]), arguments))
        elif kind == "tool_result":
            parts.append(
                ToolResult(
                    str(value["tool_call_id"]), str(value["content"]), bool(value["is_error"])
                )
            )
        else:
            raise ValueError(f"unknown part kind {kind!r}")
    return tuple(parts)


def _image_data(value: Mapping[str, Any], images: Mapping[str, bytes]) -> bytes:
    digest = value.get("sha256")
    if digest is None:
        return base64.b64decode(value.get("data", ""))
    if not digest:
        return b""
    data = images.get(str(digest))
    if data is None:
        raise ValueError(f"image {digest} is missing from the store")
    return data


def appended(
    messages: Sequence[Message],
    counts: Sequence[int],
    *,
    base: int,
    stamp: int,
    request_id: str,
    summary: SummaryRecord | None,
    summary_seq: int | None,
) -> AppendResult:
    """What an append stored: `messages` at the seqs from `base`, and `summary` at
    `summary_seq` (None: it was not stored, another request summarized first)."""
    created = from_us(stamp)
    stored = tuple(
        StoredMessage(seq=base + i, message=m, tokens=n, created_at=created, request_id=request_id)
        for i, (m, n) in enumerate(zip(messages, counts, strict=True))
    )
    stored_summary = None
    if summary is not None and summary_seq is not None:
        stored_summary = StoredMessage(
            seq=summary_seq,
            message=summary.message,
            tokens=summary.tokens,
            created_at=created,
            summarizes=summary.replaces,
        )
    return AppendResult(stored, stored_summary)
