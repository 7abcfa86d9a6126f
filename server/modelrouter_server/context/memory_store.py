"""A conversation store in process memory: for tests and throwaway servers.

Each operation runs without an `await` between its reads and writes, so on one event loop it
is atomic without a lock.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from modelrouter_server.context._records import (
    Stamps,
    check_append,
    decode_page_token,
    encode_page_token,
    from_us,
    image_hash,
    new_conversation_id,
    normalized_page_size,
    summary_applies,
)
from modelrouter_server.context.store import (
    AppendResult,
    Conversation,
    ConversationPage,
    StoredMessage,
    SummaryRecord,
)
from modelrouter_server.domain import ImagePart, Message
from modelrouter_server.errors import ConversationNotFound, TurnAlreadyRecorded


@dataclass
class _Row:
    created_us: int
    updated_us: int
    metadata: dict[str, str]
    messages: builtins.list[StoredMessage] = field(default_factory=builtins.list)
    owner: str = ""


class MemoryStore:
    """`ConversationStore` in a dict; nothing survives the process."""

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._stamp = Stamps()
        # Each image's bytes once, by hash, and the conversations whose messages hold them.
        self._images: dict[str, bytes] = {}
        self._image_users: dict[str, set[str]] = {}

    @property
    def image_count(self) -> int:
        """How many distinct images the store holds."""
        return len(self._images)

    def _interned(self, conversation_id: str, messages: Sequence[Message]) -> list[Message]:
        """`messages` with each image's bytes replaced by the one copy the store keeps."""
        out: list[Message] = []
        for message in messages:
            if not any(isinstance(p, ImagePart) and p.data for p in message.parts):
                out.append(message)
                continue
            parts = []
            for part in message.parts:
                if isinstance(part, ImagePart) and part.data:
                    digest = image_hash(part.data)
                    part = replace(part, data=self._images.setdefault(digest, part.data))
                    self._image_users.setdefault(digest, set()).add(conversation_id)
                parts.append(part)
            out.append(replace(message, parts=tuple(parts)))
        return out

    async def create(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, str],
        *,
        tokens: Sequence[int] | None = None,
        owner: str = "",
    ) -> Conversation:
        counts = check_append(messages, tokens)
        stamp = self._stamp()
        conversation_id = new_conversation_id()
        messages = self._interned(conversation_id, messages)
        row = _Row(stamp, stamp, dict(metadata), owner=owner)
        row.messages.extend(
            StoredMessage(seq=i, message=m, tokens=n, created_at=from_us(stamp))
            for i, (m, n) in enumerate(zip(messages, counts, strict=True))
        )
        self._rows[conversation_id] = row
        return self._conversation(conversation_id, row, with_messages=True)

    async def get(self, conversation_id: str, *, owner: str = "") -> Conversation:
        row = self._row(conversation_id, owner)
        return self._conversation(conversation_id, row, with_messages=True)

    async def list(
        self, page_size: int = 0, page_token: str = "", *, owner: str = ""
    ) -> ConversationPage:
        size = normalized_page_size(page_size)
        ordered = sorted(
            ((i, r) for i, r in self._rows.items() if r.owner == owner),
            key=lambda kv: (kv[1].created_us, kv[0]),
            reverse=True,
        )
        if page_token:
            after = decode_page_token(page_token)
            ordered = [(i, r) for i, r in ordered if (r.created_us, i) < after]
        page = ordered[:size]
        token = ""
        if len(ordered) > size:
            last_id, last = page[-1]
            token = encode_page_token(last.created_us, last_id)
        return ConversationPage(
            tuple(self._conversation(i, r, with_messages=False) for i, r in page), token
        )

    async def delete(self, conversation_id: str, *, owner: str = "") -> None:
        self._row(conversation_id, owner)
        del self._rows[conversation_id]
        for digest, users in builtins.list(self._image_users.items()):
            users.discard(conversation_id)
            if not users:
                del self._image_users[digest], self._images[digest]

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[Message],
        *,
        tokens: Sequence[int] | None = None,
        summary: SummaryRecord | None = None,
        request_id: str = "",
    ) -> AppendResult:
        counts = check_append(messages, tokens)
        row = self._row(conversation_id)
        if request_id and any(m.request_id == request_id for m in row.messages):
            raise TurnAlreadyRecorded(conversation_id, request_id)
        messages = self._interned(conversation_id, messages)
        stamp = self._stamp()
        created = from_us(stamp)
        base = len(row.messages)
        added = [
            StoredMessage(
                seq=base + i, message=m, tokens=n, created_at=created, request_id=request_id
            )
            for i, (m, n) in enumerate(zip(messages, counts, strict=True))
        ]
        row.messages.extend(added)
        stored_summary = None
        if summary is not None and summary_applies(
            summary, base, {m.seq: m.summarized_by for m in row.messages}
        ):
            stored_summary = StoredMessage(
                seq=len(row.messages),
                message=summary.message,
                tokens=summary.tokens,
                created_at=created,
                summarizes=summary.replaces,
            )
            for seq in summary.replaces:
                row.messages[seq] = replace(row.messages[seq], summarized_by=stored_summary.seq)
            row.messages.append(stored_summary)
        row.updated_us = stamp
        return AppendResult(tuple(added), stored_summary)

    async def aclose(self) -> None:
        return None

    def _row(self, conversation_id: str, owner: str | None = None) -> _Row:
        """The row; `owner` None: whoever owns it (append, after the turn was opened)."""
        row = self._rows.get(conversation_id)
        if row is None or (owner is not None and row.owner != owner):
            raise ConversationNotFound(conversation_id)
        return row

    @staticmethod
    def _conversation(conversation_id: str, row: _Row, *, with_messages: bool) -> Conversation:
        return Conversation(
            id=conversation_id,
            created_at=from_us(row.created_us),
            updated_at=from_us(row.updated_us),
            metadata=dict(row.metadata),
            messages=tuple(row.messages) if with_messages else (),
            message_count=len(row.messages),
        )
