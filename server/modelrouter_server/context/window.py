"""Fitting a prompt into the context window of the model that will serve it.

The budget for the prompt is the model's `context_window` less the request's
`max_output_tokens` less `context.safety_margin_tokens`. `ContextManager.fit`:

1. Counts the messages (cached per message, so fitting again for the next candidate of the
   same request costs little). At or below `context.summarize_threshold` of the budget the
   messages go out unchanged.
2. Above it, summarizes the oldest messages that may go: never a system message, a pinned
   message or the latest user turn (the last user message and anything after it). Enough of
   them are replaced that the prompt drops to about half the threshold, so a growing
   conversation is summarized again only after it has grown that much more. The summary
   is one message standing where the first message it replaces stood. A summary already
   made for the start of the history (stored with a conversation, or remembered in this
   process for a client that resends its whole history) is reused as long as the prompt
   with it in place stays within the threshold; only then is a longer block summarized,
   the summarizer reading the earlier summary instead of the messages it replaced. So the
   start of the prompt stays byte-identical for many turns and the providers' prompt
   caches keep serving it, changing once per block rather than on every turn.
3. If the prompt still exceeds the budget, drops messages by importance: LOW first, then
   NORMAL, then HIGH, the oldest first within a level. The never-removed messages stay.
   When even they exceed the budget, `RequestError` names the largest of them.

The summary's role is USER, always. A system summary would be indistinguishable from the
system prompt, which is never removed, so a later summary could not absorb it; and Anthropic
lifts every system message into its top-level `system` field, which would tear the summary
from its place in the dialogue. A user message keeps its place with both providers. To keep
the user/assistant alternation that Anthropic requires, the summarized span starts on a user
turn and is extended to end on one when the next message allows: the summary then stands in
for a user turn, after an assistant (or system) message and before the assistant's reply.
Whatever still ends up adjacent after summarizing or pruning is repaired when the prompt is
assembled: consecutive messages of one role are joined into one (nothing kept is lost), and
if the dialogue would open with an assistant message, a one-line user note saying that
earlier messages were left out goes before it.
A prompt that needed no change is sent exactly as given.

For conversations, `fit(..., seqs=...)` takes the stored seqs of the history's messages: the
summary then covers stored messages only, and `FittedPrompt.summary_record` is what the store
records with the turn, so the next request reuses the summary instead of summarizing again.
Within one process, summaries are also cached by the content they replace, so re-fitting for
a fallback candidate does not call the summarizer twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import structlog

from modelrouter_server.attempts import NoCandidates
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context._lru import LruCache
from modelrouter_server.context.store import SummaryRecord
from modelrouter_server.context.summarize import Summarizer, summary_message_text
from modelrouter_server.context.tokens import TokenCounter
from modelrouter_server.domain import ContextReport, Importance, Message, Role, Usage
from modelrouter_server.errors import DeadlineExceeded, ProviderError, RequestError

_log = structlog.get_logger(__name__)

OMITTED_NOTE = "[Earlier messages were left out to fit the context window.]"
"""The user note placed before a dialogue that would otherwise open with the assistant."""

# Planning allowance for the summary's heading and framing on top of summary_max_tokens.
_SUMMARY_FRAMING_TOKENS = 24
# Room kept in the summarizer's own window for its instructions and the request framing.
_SUMMARIZER_PROMPT_TOKENS = 512


@dataclass(frozen=True, slots=True)
class Replacement:
    """A summary that replaced messages of the prompt."""

    message: Message
    indexes: tuple[int, ...]
    """Positions, in the messages given to `fit`, of the messages it replaces."""
    seqs: tuple[int, ...]
    """Their stored seqs (empty unless `fit` was given seqs)."""
    tokens: int
    """The summary message's tokens on the serving model."""
    summarizer_model: str
    usage: Usage
    """What the summarizer call used (zero when the summary came from the cache)."""


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    """The messages to send to one model, and what was done to fit them."""

    messages: tuple[Message, ...]
    report: ContextReport
    replaced: Replacement | None = None
    pruned: tuple[int, ...] = ()
    """Positions, in the messages given to `fit`, of the messages dropped (the first of
    `replaced.indexes` here means the summary itself was dropped)."""

    @property
    def summary_record(self) -> SummaryRecord | None:
        """The summary for the conversation store to record with the turn, if any."""
        if self.replaced is None or not self.replaced.seqs:
            return None
        return SummaryRecord(self.replaced.message, self.replaced.seqs, self.replaced.tokens)


@dataclass(frozen=True, slots=True)
class _Item:
    index: int
    """Position in the input; a summary takes the position of the first message it replaces."""
    message: Message
    tokens: int
    protected: bool


def tool_groups(messages: Sequence[Message]) -> dict[int, tuple[int, ...]]:
    """Each position in a tool exchange -> every position of that exchange: an assistant
    message with tool calls and the ROLE_TOOL messages after it. An exchange is kept,
    summarized or dropped whole, so no result ever loses its call (or a call its result)."""
    groups: dict[int, tuple[int, ...]] = {}
    i = 0
    while i < len(messages):
        if messages[i].role is Role.ASSISTANT and messages[i].tool_calls:
            end = i + 1
            while end < len(messages) and messages[end].role is Role.TOOL:
                end += 1
            members = tuple(range(i, end))
            groups.update(dict.fromkeys(members, members))
            i = end
        else:
            i += 1
    return groups


def protected_indexes(messages: Sequence[Message]) -> frozenset[int]:
    """Positions never removed: system messages, pinned messages, the latest user turn,
    and the whole of any tool exchange one of them belongs to."""
    if not messages:
        return frozenset()
    last_user = max(
        (i for i, m in enumerate(messages) if m.role is Role.USER), default=len(messages) - 1
    )
    protected = {
        i for i, m in enumerate(messages) if m.role is Role.SYSTEM or m.pinned or i >= last_user
    }
    groups = tool_groups(messages)
    for i in list(protected):
        protected.update(groups.get(i, ()))
    return frozenset(protected)


def _join(first: Message, second: Message) -> Message:
    contents = [m.content for m in (first, second) if m.content]
    return Message(
        role=first.role,
        content="\n\n".join(contents),
        pinned=first.pinned or second.pinned,
        importance=max(first.importance, second.importance),
        parts=first.parts + second.parts,
    )


def _assemble(kept: Sequence[_Item], first_dialogue_index: int | None) -> tuple[Message, ...]:
    """The kept messages with alternation repaired (see the module docstring)."""
    out: list[Message] = []
    first_kept_dialogue: int | None = None
    for item in kept:
        message = item.message
        if message.role is not Role.SYSTEM and first_kept_dialogue is None:
            first_kept_dialogue = item.index
        if out and message.role is not Role.SYSTEM and out[-1].role is message.role:
            out[-1] = _join(out[-1], message)
        else:
            out.append(message)
    opening = next((k for k, m in enumerate(out) if m.role is not Role.SYSTEM), None)
    if (
        opening is not None
        and out[opening].role is Role.ASSISTANT
        and first_kept_dialogue != first_dialogue_index
    ):
        out.insert(opening, Message(Role.USER, OMITTED_NOTE))
    return tuple(out)


def _exchange_of(items: Sequence[_Item]) -> Callable[[int], set[int]]:
    """item index -> the indexes that go with it: its whole tool exchange, or itself."""
    groups = tool_groups([it.message for it in items])
    position = {it.index: k for k, it in enumerate(items)}

    def members(index: int) -> set[int]:
        k = position[index]
        return {items[m].index for m in groups.get(k, (k,))}

    return members


def _whole_exchanges(
    span: list[int], groups: dict[int, tuple[int, ...]], eligible: set[int]
) -> list[int]:
    """`span` ending on a whole tool exchange: completed when every rest of it may be
    summarized, else cut before the exchange."""
    if not span or span[-1] not in groups:
        return span
    members = groups[span[-1]]
    if all(i in eligible for i in members):
        return span + [i for i in members if i > span[-1]]
    return [i for i in span if i < members[0]]


def _with_summary(
    items: Sequence[_Item], span: tuple[int, ...], summary: Replacement
) -> list[_Item]:
    """`items` without the summarized ones, the summary standing where the first stood."""
    replaced = set(span)
    summary_item = _Item(span[0], summary.message, summary.tokens, False)
    return [
        summary_item if it.index == span[0] else it
        for it in items
        if it.index == span[0] or it.index not in replaced
    ]


class ContextManager:
    """Fits prompts into model windows: summarizes, then prunes, never losing what matters.

    `summarizer`: built by the composition root (a `ModelSummarizer` sending through the
    fallback chain); None means history is pruned, never summarized.
    """

    def __init__(
        self,
        config: RouterConfig,
        counter: TokenCounter,
        *,
        summarizer: Summarizer | None = None,
        summary_target_share: float = 0.5,
        summary_cache_entries: int = 256,
    ) -> None:
        if not 0 < summary_target_share <= 1:
            raise ValueError("summary_target_share must be within (0, 1]")
        self._config = config
        self._counter = counter
        self._summarizer = summarizer
        self._target_share = summary_target_share
        self._summaries: LruCache[tuple[str, bytes], str] = LruCache(summary_cache_entries)
        # (summarizer, digest of a span's first message) -> lengths of spans summarized from
        # it: how a later fit of the same, longer history finds the summary to reuse.
        self._span_lengths: LruCache[tuple[str, bytes], frozenset[int]] = LruCache(
            summary_cache_entries
        )
        self._summary_locks: dict[tuple[str, bytes], asyncio.Lock] = {}

    # -- what the router asks before choosing -------------------------------------------------

    def budget_tokens(self, model: str, max_output_tokens: int) -> int:
        """The prompt budget on `model`: window less output less the safety margin."""
        window = self._config.models[self._counter.resolve(model)].context_window
        return window - max_output_tokens - self._config.context.safety_margin_tokens

    def min_tokens(self, model: str, messages: Sequence[Message]) -> int:
        """The tokens of what can never be removed (system prompt, pinned messages, the
        latest user turn) on `model`: the smallest prompt `fit` can produce."""
        counts = self._counter.message_tokens(model, messages)
        floor = sum(counts[i] for i in protected_indexes(messages))
        return floor + self._counter.reply_priming_tokens(model)

    # -- fitting -----------------------------------------------------------------------------

    async def fit(
        self,
        model: str,
        messages: Sequence[Message],
        max_output_tokens: int,
        *,
        seqs: Sequence[int] | None = None,
        timeout_s: float | None = None,
    ) -> FittedPrompt:
        """The prompt for `model`, summarized and pruned to its budget as needed.

        `seqs`: for a stored conversation, the seqs of its history, which is the start of
        `messages` (the request's new messages follow). `timeout_s` bounds the summarizer
        call. Raises `RequestError` when the never-removed messages alone do not fit.
        """
        model_id = self._counter.resolve(model)
        msgs = tuple(messages)
        if seqs is not None and len(seqs) > len(msgs):
            raise ValueError(f"{len(seqs)} seqs for {len(msgs)} messages")
        budget = self._checked_budget(model_id, max_output_tokens)
        await self._counter.warm(model_id, msgs)
        counts = self._counter.message_tokens(model_id, msgs)
        priming = self._counter.reply_priming_tokens(model_id)
        history = sum(counts) + priming
        unchanged = FittedPrompt(msgs, ContextReport(history, history, 0, 0, budget))
        threshold = self._config.context.summarize_threshold * budget
        if history <= threshold:
            return unchanged

        protected = protected_indexes(msgs)
        floor = sum(counts[i] for i in protected) + priming
        if floor > budget:
            raise self._too_large(model_id, max_output_tokens, counts, protected, seqs, floor)

        items = [_Item(i, m, counts[i], i in protected) for i, m in enumerate(msgs)]
        span = await self._span(model_id, msgs, counts, protected, seqs, history, threshold)
        replacement = await self._summarize(model_id, msgs, span, seqs, timeout_s) if span else None
        if replacement is not None:
            items = _with_summary(items, span, replacement)

        dropped = self._drop_plan(items, priming, budget)
        if replacement is None and not dropped:
            return unchanged  # not summarized and it fits: send it exactly as given

        out, sent = self._assembled(model_id, msgs, items, dropped, budget)
        if sent > budget:
            raise self._too_large(model_id, max_output_tokens, counts, protected, seqs, sent)
        report = ContextReport(
            history_tokens=history,
            sent_tokens=sent,
            summarized_messages=len(span) if replacement is not None else 0,
            pruned_messages=len(dropped),
            budget_tokens=budget,
        )
        return FittedPrompt(out, report, replacement, tuple(sorted(dropped)))

    def _checked_budget(self, model_id: str, max_output_tokens: int) -> int:
        """The prompt budget on `model_id`; `RequestError` when the output leaves none."""
        budget = self.budget_tokens(model_id, max_output_tokens)
        if budget <= 0:
            raise RequestError(
                "max_output_tokens",
                f"{max_output_tokens} leaves no room for a prompt in {model_id}'s context "
                f"window of {self._config.models[model_id].context_window} tokens",
            )
        return budget

    def _assembled(
        self,
        model_id: str,
        msgs: tuple[Message, ...],
        items: Sequence[_Item],
        dropped: set[int],
        budget: int,
    ) -> tuple[tuple[Message, ...], int]:
        """The kept items assembled into the prompt and its count, dropping more (adding
        to `dropped`) while it is over `budget` and something can still go."""
        first_dialogue = next((i for i, m in enumerate(msgs) if m.role is not Role.SYSTEM), None)
        more = self._prune_order(items, dropped)
        exchange = _exchange_of(items)
        while True:
            out = _assemble([it for it in items if it.index not in dropped], first_dialogue)
            sent = self._counter.count_local(model_id, out)
            # Joining and the omitted-messages note change the count a little: drop more.
            nxt = next(more, None) if sent > budget else None
            if nxt is None:
                return out, sent
            dropped.update(exchange(nxt.index))

    # -- summarizing -------------------------------------------------------------------------

    async def _span(
        self,
        model_id: str,
        msgs: tuple[Message, ...],
        counts: tuple[int, ...],
        protected: frozenset[int],
        seqs: Sequence[int] | None,
        history: int,
        threshold: float,
    ) -> tuple[int, ...]:
        """The positions to summarize: the oldest removable messages, as many as bring the
        prompt to the target share of the threshold (bounded by the summarizer's window)."""
        if self._summarizer is None:
            return ()
        stored = len(msgs) if seqs is None else len(seqs)
        eligible = [i for i in range(stored) if i not in protected]
        # Start on a user turn: the summary (a user message) then follows an assistant or
        # system message, as the turn it replaces did.
        while eligible and msgs[eligible[0]].role in (Role.ASSISTANT, Role.TOOL):
            eligible.pop(0)
        if not eligible:
            return ()
        summarizer_id = self._summarizer.model_id
        reused = await self._reusable_span(model_id, msgs, counts, eligible, history, threshold)
        if reused:
            return reused
        summary_cost, input_cap = self._summary_limits(model_id, summarizer_id)
        eligible_msgs = [msgs[i] for i in eligible]
        await self._counter.warm(summarizer_id, eligible_msgs)
        input_tokens = dict(
            zip(eligible, self._counter.message_tokens(summarizer_id, eligible_msgs), strict=True)
        )
        target = threshold * self._target_share
        span: list[int] = []
        remaining, used = history, 0
        for i in eligible:
            if remaining + summary_cost <= target or used + input_tokens[i] > input_cap:
                break
            span.append(i)
            remaining -= counts[i]
            used += input_tokens[i]
        span = _whole_exchanges(span, tool_groups(msgs), set(eligible))
        if span and msgs[span[-1]].role in (Role.ASSISTANT, Role.TOOL):
            following = span[-1] + 1
            if (
                following in input_tokens
                and msgs[following].role is Role.USER
                and used + input_tokens[following] <= input_cap
            ):
                span.append(following)
        if sum(counts[i] for i in span) <= summary_cost:
            return ()  # replacing them would not save tokens
        return tuple(span)

    async def _reusable_span(
        self,
        model_id: str,
        msgs: tuple[Message, ...],
        counts: tuple[int, ...],
        eligible: list[int],
        history: int,
        threshold: float,
    ) -> tuple[int, ...]:
        """The span of a summary already made for the start of this history, while the
        prompt with that summary in place stays within the threshold.

        Reusing it keeps the start of the prompt byte-identical from turn to turn, so the
        provider's prompt cache keeps serving it; a new summary (of a longer span, down to
        the target share again) is made only when the prompt outgrows the threshold: the
        prompt's start changes once per block of turns, not on every turn."""
        assert self._summarizer is not None
        summarizer_id = self._summarizer.model_id
        anchor = (summarizer_id, await self._counter.messages_digest([msgs[eligible[0]]]))
        lengths = self._span_lengths.get(anchor)
        if not lengths:
            return ()
        groups, allowed = tool_groups(msgs), set(eligible)
        for length in sorted(lengths, reverse=True):
            span = eligible[:length]
            if length > len(eligible) or _whole_exchanges(span, groups, allowed) != span:
                continue
            replaced = [msgs[i] for i in span]
            key = (summarizer_id, await self._counter.messages_digest(replaced))
            text = self._summaries.get(key)
            if text is None:
                continue
            message = self._summary_message(text, replaced)
            await self._counter.warm(model_id, [message])
            tokens = self._counter.message_tokens(model_id, [message])[0]
            if history - sum(counts[i] for i in span) + tokens <= threshold:
                return tuple(span)
            return ()  # the longest known summary no longer suffices: summarize anew
        return ()

    def _remember_span(self, summarizer_id: str, anchor: bytes, length: int) -> None:
        key = (summarizer_id, anchor)
        self._span_lengths.put(key, (self._span_lengths.get(key) or frozenset()) | {length})

    async def _summarizer_input(
        self, summarizer_id: str, replaced: Sequence[Message]
    ) -> tuple[Message, ...]:
        """What the summarizer reads for `replaced`: the summary already made of its longest
        known start followed by the rest, so summarizing a longer span does not read the
        whole history again."""
        anchor = (summarizer_id, await self._counter.messages_digest(replaced[:1]))
        for length in sorted(self._span_lengths.get(anchor) or (), reverse=True):
            if length >= len(replaced):
                continue
            key = (summarizer_id, await self._counter.messages_digest(replaced[:length]))
            text = self._summaries.get(key)
            if text is not None:
                return (self._summary_message(text, replaced[:length]), *replaced[length:])
        return tuple(replaced)

    @staticmethod
    def _summary_message(text: str, replaced: Sequence[Message]) -> Message:
        return Message(
            Role.USER,
            summary_message_text(text, len(replaced)),
            importance=max((m.importance for m in replaced), default=Importance.NORMAL),
        )

    def _summary_limits(self, model_id: str, summarizer_id: str) -> tuple[int, int]:
        """What a summary costs in `model_id`'s prompt (at most), and how many tokens of
        messages the summarizer's own window can take in one call."""
        summarizer = self._config.models[summarizer_id]
        context = self._config.context
        summary_tokens = min(context.summary_max_tokens, summarizer.max_output_tokens)
        cost = (
            summary_tokens
            + self._config.models[model_id].message_overhead_tokens
            + _SUMMARY_FRAMING_TOKENS
        )
        input_cap = (
            summarizer.context_window
            - summary_tokens
            - context.safety_margin_tokens
            - _SUMMARIZER_PROMPT_TOKENS
        )
        return cost, input_cap

    async def _summarize(
        self,
        model_id: str,
        msgs: tuple[Message, ...],
        span: tuple[int, ...],
        seqs: Sequence[int] | None,
        timeout_s: float | None,
    ) -> Replacement | None:
        summarizer = self._summarizer
        if summarizer is None:
            return None
        replaced = [msgs[i] for i in span]
        key = (summarizer.model_id, await self._counter.messages_digest(replaced))
        # Concurrent fits of the same history (two requests on one conversation) wait for
        # one summarizer call instead of each making their own.
        lock = self._summary_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                text = self._summaries.get(key)
                usage = Usage()
                if text is None:
                    reading = await self._summarizer_input(summarizer.model_id, replaced)
                    try:
                        summary = await summarizer.summarize(reading, timeout_s=timeout_s)
                    except (ProviderError, NoCandidates, DeadlineExceeded) as exc:
                        # Summarizing is an optimization: pruning still fits the prompt.
                        _log.warning(
                            "summarizer_failed",
                            model=summarizer.model_id,
                            error=type(exc).__name__,
                            detail=exc.message,
                        )
                        return None
                    text, usage = summary.text, summary.usage
                    if text.strip():
                        self._summaries.put(key, text)
                        anchor = await self._counter.messages_digest(replaced[:1])
                        self._remember_span(summarizer.model_id, anchor, len(span))
        finally:
            if not lock.locked() and self._summary_locks.get(key) is lock:
                del self._summary_locks[key]
        if not text.strip():
            return None
        message = self._summary_message(text, replaced)
        await self._counter.warm(model_id, [message])
        tokens = self._counter.message_tokens(model_id, [message])[0]
        return Replacement(
            message=message,
            indexes=span,
            seqs=tuple(seqs[i] for i in span) if seqs is not None else (),
            tokens=tokens,
            summarizer_model=summarizer.model_id,
            usage=usage,
        )

    # -- pruning -----------------------------------------------------------------------------

    @staticmethod
    def _prune_order(items: Sequence[_Item], dropped: set[int]) -> Iterator[_Item]:
        """Removable items not yet dropped: least important first, oldest first within."""
        removable = [it for it in items if not it.protected and it.index not in dropped]
        return iter(sorted(removable, key=lambda it: (it.message.importance, it.index)))

    def _drop_plan(self, items: Sequence[_Item], priming: int, budget: int) -> set[int]:
        """Positions to drop so the per-message counts fit the budget; a tool exchange
        goes whole."""
        total = sum(it.tokens for it in items) + priming
        tokens = {it.index: it.tokens for it in items}
        exchange = _exchange_of(items)
        dropped: set[int] = set()
        for item in self._prune_order(items, dropped):
            if total <= budget:
                break
            for index in exchange(item.index) - dropped:
                dropped.add(index)
                total -= tokens[index]
        return dropped

    def _too_large(
        self,
        model_id: str,
        max_output_tokens: int,
        counts: Sequence[int],
        protected: frozenset[int],
        seqs: Sequence[int] | None,
        needed: int,
    ) -> RequestError:
        largest = max(protected, key=lambda i: counts[i])
        stored = 0 if seqs is None else len(seqs)
        if largest < stored and seqs is not None:
            field, what = "conversation_id", f"conversation message seq {seqs[largest]}"
        else:
            field = what = f"messages[{largest - stored}]"
        model = self._config.models[model_id]
        margin = self._config.context.safety_margin_tokens
        budget = model.context_window - max_output_tokens - margin
        return RequestError(
            field,
            f"{what} is too large ({counts[largest]} tokens): the messages that are never "
            f"removed (system prompt, pinned messages, latest user turn) need {needed} tokens, "
            f"but {model_id} has room for {budget} (context window {model.context_window} "
            f"- max_output_tokens {max_output_tokens} - safety margin {margin})",
        )
