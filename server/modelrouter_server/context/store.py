"""The conversation store interface.

Implementations: `SQLiteStore` (embedded default, one file), `RedisStore` (router replicas share
conversations), `MemoryStore` (tests, throwaway servers). Every implementation:

- raises `ConversationNotFound` for an unknown id, `StoreError` when the store is unreachable
  or its data is unreadable, and then has written nothing;
- allocates seqs atomically in `append`, so concurrent turns on one conversation (in one
  process or across replicas) neither lose nor duplicate a message;
- never deletes a message from a conversation (only `delete` removes a whole conversation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from modelrouter_server.context.conversations import (
    AppendResult,
    Conversation,
    ConversationPage,
    SummaryRecord,
)
from modelrouter_server.domain import Message


@runtime_checkable
class ConversationStore(Protocol):
    async def create(
        self,
        messages: Sequence[Message],
        metadata: Mapping[str, str],
        *,
        tokens: Sequence[int] | None = None,
    ) -> Conversation:
        """A new conversation holding `messages` (seqs 0..n-1); `tokens` counts each."""
        ...

    async def get(self, conversation_id: str) -> Conversation:
        """The conversation with every stored message, summaries and originals alike."""
        ...

    async def list(self, page_size: int = 0, page_token: str = "") -> ConversationPage:
        """Conversations newest first, without messages. `page_size` 0: the default (50);
        at most 500. `page_token`: a previous page's `next_page_token`."""
        ...

    async def delete(self, conversation_id: str) -> None:
        """Remove the conversation and all its messages."""
        ...

    async def append(
        self,
        conversation_id: str,
        messages: Sequence[Message],
        *,
        tokens: Sequence[int] | None = None,
        summary: SummaryRecord | None = None,
    ) -> AppendResult:
        """Atomically add one turn (the caller's new messages and the reply) at the next
        seqs, and record `summary` (as a message after them) if none of the seqs it replaces
        has been summarized meanwhile."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads."""
        ...
