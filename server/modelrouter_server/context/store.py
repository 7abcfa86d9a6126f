"""The conversation store: its interface and the frozen values it returns.

Implementations: `SQLiteStore` (embedded default, one file), `RedisStore` (router replicas share
conversations), `MemoryStore` (tests, throwaway servers). Every implementation:

- raises `ConversationNotFound` for an unknown id, `StoreError` when the store is unreachable
  or its data is unreadable, and then has written nothing;
- allocates seqs atomically in `append`, so concurrent turns on one conversation (in one
  process or across replicas) neither lose nor duplicate a message;
- never deletes a message from a conversation (only `delete` removes a whole conversation);
- records a turn's request id with its messages and refuses (`TurnAlreadyRecorded`, nothing
  written) a second append with the same id to the same conversation, atomically;
- keeps each conversation with its `owner` (the tenant that created it): `get`, `list` and
  `delete` see only the caller's own, and another owner's id is `ConversationNotFound`, as if
  it did not exist. The owner "" is the default tenant's, and holds every conversation stored
  before owners existed;
- keeps each image's bytes once, by sha256, for every message of every conversation that
  carries it, and removes them with the last conversation that uses them;
- answers a page token that does not parse with `RequestError` on `page_token`, and leaves a
  conversation whose stored values do not parse out of `list` (logged) rather than failing
  the whole page.

A conversation's messages are numbered by `seq` from 0 with no gaps, in the order they were
appended. Nothing is ever deleted from a conversation: when older messages are summarized, the
summary is appended as one more message that records the seqs it replaces (`summarizes`), and
each replaced message records the summary's seq (`summarized_by`). `Conversation.history()` is
what a model is sent: every message not replaced, each summary standing where the first message
it replaces stood.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from modelrouter_server.domain import Message


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation with the store's bookkeeping."""

    seq: int
    message: Message
    tokens: int
    """Tokens counted for the model that served the turn that added it (0: not counted)."""
    created_at: datetime
    summarized_by: int | None = None
    """The seq of the summary that replaces this message, if one does."""
    summarizes: tuple[int, ...] = ()
    """For a summary: the seqs it replaces (empty for any other message)."""
    request_id: str = ""
    """The request id of the Generate turn that added this message (empty for opening
    messages and summaries): what makes a retried turn idempotent."""

    @property
    def is_summary(self) -> bool:
        return bool(self.summarizes)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation; `messages` is empty when listed (see `message_count`)."""

    id: str
    created_at: datetime
    updated_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    messages: tuple[StoredMessage, ...] = ()
    message_count: int = 0

    def history(self) -> tuple[StoredMessage, ...]:
        """The messages to send: the ones no summary replaces, in conversation order.

        A summary takes the place of the earliest message it replaces (following nested
        summaries down to the originals), so the order of what remains is preserved.
        """
        by_seq = {m.seq: m for m in self.messages}

        def current(message: StoredMessage) -> StoredMessage:
            seen = {message.seq}
            while message.summarized_by is not None and message.summarized_by in by_seq:
                message = by_seq[message.summarized_by]
                if message.seq in seen:  # a cycle would be corrupt data; stop rather than loop
                    break
                seen.add(message.seq)
            return message

        out: list[StoredMessage] = []
        emitted: set[int] = set()
        for message in self.messages:
            if message.is_summary:
                continue  # placed by the first message it replaces
            shown = current(message)
            if shown.seq not in emitted:
                emitted.add(shown.seq)
                out.append(shown)
        return tuple(out)


def new_conversation(
    conversation_id: str,
    messages: Sequence[Message],
    tokens: Sequence[int],
    metadata: Mapping[str, str],
    created: datetime,
) -> Conversation:
    """A conversation as just created: its opening messages numbered from 0."""
    return Conversation(
        id=conversation_id,
        created_at=created,
        updated_at=created,
        metadata=dict(metadata),
        messages=tuple(
            StoredMessage(seq=i, message=m, tokens=n, created_at=created)
            for i, (m, n) in enumerate(zip(messages, tokens, strict=True))
        ),
        message_count=len(messages),
    )


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """A summary to store: it replaces the messages with the given seqs."""

    message: Message
    replaces: tuple[int, ...]
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append stored.

    `summary` is None when no summary was given, or when another request summarized any of
    the same messages first (its summary stands; the turn is stored all the same).
    """

    messages: tuple[StoredMessage, ...]
    summary: StoredMessage | None = None


@dataclass(frozen=True, slots=True)
class ConversationPage:
    """One page of conversations, newest first, without their messages."""

    conversations: tuple[Conversation, ...]
    next_page_token: str = ""
    """Empty on the last page."""


@runtime_checkable
class ConversationStore(Protocol):
    async def create(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, str],
        *,
        tokens: Sequence[int] | None = None,
        owner: str = "",
    ) -> Conversation:
        """A new conversation of `owner` holding `messages` (seqs 0..n-1); `tokens` counts
        each."""
        ...

    async def get(self, conversation_id: str, *, owner: str = "") -> Conversation:
        """The conversation with every stored message, summaries and originals alike."""
        ...

    async def list(
        self, page_size: int = 0, page_token: str = "", *, owner: str = ""
    ) -> ConversationPage:
        """`owner`'s conversations newest first, without messages. `page_size` 0: the
        default (50); at most 500. `page_token`: a previous page's `next_page_token`."""
        ...

    async def delete(self, conversation_id: str, *, owner: str = "") -> None:
        """Remove the conversation and all its messages."""
        ...

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[Message],
        *,
        tokens: Sequence[int] | None = None,
        summary: SummaryRecord | None = None,
        request_id: str = "",
    ) -> AppendResult:
        """Atomically add one turn (the caller's new messages and the reply) at the next
        seqs, and record `summary` (as a message after them) if none of the seqs it replaces
        has been summarized meanwhile. A non-empty `request_id` is stored with each of the
        turn's messages; if a message of the conversation already has it, raise
        `TurnAlreadyRecorded` and write nothing."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...
