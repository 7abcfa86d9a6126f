"""Conversations as the request path uses them: load the history, fit it, record the turn.

    turn = await conversations.open_turn(conversation_id, new_messages)
    fitted = await context.fit(model_id, turn.messages, max_output, seqs=turn.seqs)  # per candidate
    ... the serving candidate answers ...
    await conversations.record_turn(turn, reply_text, model_id=model_id, fitted=fitted)

`record_turn` appends the new messages and the reply in one atomic append, with the summary
the serving candidate's fit produced (if any), so the next request reuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context.store import (
    AppendResult,
    Conversation,
    ConversationPage,
    ConversationStore,
    StoredMessage,
)
from modelrouter_server.context.tokens import TokenCounter
from modelrouter_server.context.window import FittedPrompt
from modelrouter_server.domain import Message, Role
from modelrouter_server.errors import ConversationNotFound


@dataclass(frozen=True, slots=True)
class ConversationTurn:
    """A request's view of a conversation: the stored history and the new messages."""

    conversation_id: str
    history: tuple[StoredMessage, ...]
    new_messages: tuple[Message, ...]
    request_id: str = ""
    recorded: tuple[StoredMessage, ...] = ()
    """The messages an earlier turn with `request_id` stored (empty when there was none):
    the new messages it added, then its reply."""

    @property
    def messages(self) -> tuple[Message, ...]:
        """The prompt before fitting: the history, then the new messages."""
        return (*(m.message for m in self.history), *self.new_messages)

    @property
    def seqs(self) -> tuple[int, ...]:
        """The stored seqs of the history (what `ContextManager.fit` takes as `seqs`)."""
        return tuple(m.seq for m in self.history)


class ConversationService:
    """The conversation RPCs and the request path's history, over one store.

    Token counts stored with messages are for the model that served the turn; messages
    created by `create` are counted for the default route's first model.

    Every conversation belongs to the tenant that created it (`tenant`; empty or the
    configured default tenant: the default owner, who also owns every conversation stored
    before tenants existed). Another tenant's id is not found.
    """

    def __init__(
        self, store: ConversationStore, counter: TokenCounter, config: RouterConfig
    ) -> None:
        self._store = store
        self._counter = counter
        self._default_model = counter.resolve(config.routing.default[0])
        self._default_tenant = config.auth.default_tenant

    def _owner(self, tenant: str) -> str:
        """The store's owner key: "" for the default tenant, so conversations from before
        tenants, stored under "", are its own."""
        return "" if tenant in ("", self._default_tenant) else tenant

    @property
    def store(self) -> ConversationStore:
        return self._store

    async def create(
        self, messages: Sequence[Message], metadata: Mapping[str, str], *, tenant: str = ""
    ) -> Conversation:
        # Counted in a worker thread when large: a big history must not stall the loop.
        await self._counter.warm(self._default_model, messages)
        tokens = self._counter.message_tokens(self._default_model, messages)
        return await self._store.create(
            messages, metadata, tokens=tokens, owner=self._owner(tenant)
        )

    async def get(
        self, conversation_id: str, *, field: str = "id", tenant: str = ""
    ) -> Conversation:
        """`ConversationNotFound` names `field`: the request field holding the id."""
        try:
            return await self._store.get(conversation_id, owner=self._owner(tenant))
        except ConversationNotFound:
            raise ConversationNotFound(conversation_id, field=field) from None

    async def list(
        self, page_size: int = 0, page_token: str = "", *, tenant: str = ""
    ) -> ConversationPage:
        return await self._store.list(page_size, page_token, owner=self._owner(tenant))

    async def delete(self, conversation_id: str, *, field: str = "id", tenant: str = "") -> None:
        """`ConversationNotFound` names `field`: the request field holding the id."""
        try:
            await self._store.delete(conversation_id, owner=self._owner(tenant))
        except ConversationNotFound:
            raise ConversationNotFound(conversation_id, field=field) from None

    async def open_turn(
        self,
        conversation_id: str,
        new_messages: Sequence[Message],
        request_id: str = "",
        *,
        tenant: str = "",
    ) -> ConversationTurn:
        """The history to send (summaries in place of what they replace), the new messages,
        and what a turn with `request_id` already stored; `ConversationNotFound` for an
        unknown id or another tenant's."""
        conversation = await self._store.get(conversation_id, owner=self._owner(tenant))
        recorded = (
            tuple(m for m in conversation.messages if m.request_id == request_id)
            if request_id
            else ()
        )
        return ConversationTurn(
            conversation_id, conversation.history(), tuple(new_messages), request_id, recorded
        )

    async def prompt_messages(
        self, conversation_id: str, new_messages: Sequence[Message]
    ) -> tuple[Message, ...]:
        """The history followed by `new_messages` (no seqs: a summary made from these
        cannot be stored; prefer `open_turn`)."""
        return (await self.open_turn(conversation_id, new_messages)).messages

    async def record_turn(
        self,
        turn: ConversationTurn,
        reply: str | Message,
        *,
        model_id: str,
        fitted: FittedPrompt | None = None,
    ) -> AppendResult:
        """Append the turn's new messages and the reply, counted for `model_id`, with the
        summary of `fitted` (the serving candidate's fit) when it made one, under the
        turn's request id (`TurnAlreadyRecorded` if another call stored that id first)."""
        answer = reply if isinstance(reply, Message) else Message(Role.ASSISTANT, reply)
        added = (*turn.new_messages, answer)
        await self._counter.warm(model_id, added)
        tokens = self._counter.message_tokens(model_id, added)
        summary = fitted.summary_record if fitted is not None else None
        return await self._store.append(
            turn.conversation_id,
            added,
            tokens=tokens,
            summary=summary,
            request_id=turn.request_id,
        )
