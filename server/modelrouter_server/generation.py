"""One generate request end to end, independent of gRPC.

    options -> history (conversation store) -> router.plan -> chain, which for each
    candidate calls `build`: fit the history to that model's window -> provider
    -> append the turn to the conversation -> outcome

On a conversation, the request id makes the turn idempotent: when a turn with that id is
already stored, its answer is returned as a `ReplayedTurn` and nothing is called or
appended. Two calls with the same id at once both run; the store lets only the first
append, and the other returns that first answer (unary, with its own spend reported) or
fails with `TurnAlreadyRecorded` (a stream, whose own text has already gone out).

The window is fitted per candidate inside the chain, so a fallback to a model with a
smaller window re-fits the history for it.

With a `TenantGate`, the request's tenant (`GenerateOptions.tenant`) must be allowed its
model and task, the route keeps only the models it may use, and the request is admitted
against its limits at its upper bound before the chain runs; the hold is settled with the
real usage at the end (with nothing when it failed before any output; with the bound when
its use is unknown: cancelled, or broken after output began).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import structlog

from modelrouter_server.attempts import NoCandidates, Outcome
from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.context import (
    ContextManager,
    ConversationService,
    ConversationTurn,
    FittedPrompt,
    TokenCounter,
)
from modelrouter_server.domain import (
    Completion,
    ContextReport,
    CountMethod,
    FinishReason,
    GenerateOptions,
    Message,
    ProviderRequest,
    Refusal,
    RefusalChunk,
    ResponseFormat,
    Role,
    TextChunk,
    ThinkingChunk,
    ToolCall,
    ToolCallChunk,
)
from modelrouter_server.errors import (
    ContextWindowExceeded,
    InvalidStructuredOutput,
    RequestError,
    TurnAlreadyRecorded,
)
from modelrouter_server.resilience import (
    ChainEvent,
    ChainFinished,
    ChainResult,
    FallbackChain,
)
from modelrouter_server.routing import Router
from modelrouter_server.structured import violation
from modelrouter_server.tenancy.gate import Hold, TenantGate
from modelrouter_server.validation import check_role_order

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GenerateOutcome:
    result: ChainResult
    context: ContextReport | None
    replayed_text: str | None = None
    """Set when a concurrent call with the same request id stored its turn first: the
    answer to return instead of this call's own (whose spend `result` still reports)."""
    replayed_tool_calls: tuple[ToolCall, ...] = ()
    """With `replayed_text`: the stored answer's tool calls, returned instead of this
    call's own (whose ids the conversation does not hold)."""


@dataclass(frozen=True, slots=True)
class ReplayedTurn:
    """The answer a turn with this request id already stored: no model was called."""

    request_id: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    """The tool calls the stored answer made (an agent retrying the turn needs them)."""


def _replayed(turn: ConversationTurn) -> ReplayedTurn:
    """The stored answer of `turn.recorded`, if the request repeats that turn's messages."""
    *added, answer = turn.recorded
    if answer.message.role is not Role.ASSISTANT or [m.message for m in added] != list(
        turn.new_messages
    ):
        raise RequestError(
            "request_id", "already used in this conversation for a turn with other messages"
        )
    return ReplayedTurn(turn.request_id, answer.message.content, answer.message.tool_calls)


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """After `ChainFinished`, once the turn is stored: what context management did."""

    context: ContextReport | None


class _Request:
    """The per-request state the chain's builder fills in: each candidate's fit."""

    def __init__(
        self,
        options: GenerateOptions,
        messages: tuple[Message, ...],
        turn: ConversationTurn | None,
        context: ContextManager,
    ) -> None:
        self.options = options
        self.messages = messages
        self.turn = turn
        self._context = context
        self.fits: dict[str, FittedPrompt] = {}
        # model id -> (its context window, why the history cannot fit it)
        self.too_large: dict[str, tuple[int, RequestError]] = {}
        # What the answers so far cost, kept so a request that fails after a model
        # answered (a reply not matching its response_format, a failed store) is still
        # charged for them.
        self.spent_tokens = 0
        self.spent_usd = 0.0

    def spend(self, result: ChainResult) -> None:
        """Count what one chain run's answers used."""
        self.spent_tokens += result.usage.input_tokens + result.usage.output_tokens
        self.spent_usd += result.cost_usd

    async def build(self, candidate: Candidate, timeout_s: float | None) -> ProviderRequest:
        try:
            fitted = await self._context.fit(
                candidate.model_id,
                self.messages,
                candidate.max_output_tokens,
                seqs=self.turn.seqs if self.turn else None,
                timeout_s=timeout_s,
            )
        except RequestError as error:
            # Too large for this model: the chain moves on to a larger window. Only when
            # no model can hold it does the caller get this error (see `_reraise`).
            self.too_large[candidate.model_id] = (candidate.config.context_window, error)
            raise ContextWindowExceeded(
                error.message, provider=candidate.provider, model=candidate.model_id
            ) from error
        self.fits[candidate.model_id] = fitted
        return candidate.request(
            fitted.messages,
            stop=self.options.stop,
            timeout_s=timeout_s,
            request_id=self.options.request_id,
            tools=self.options.tools,
            response_format=self.options.response_format,
        )

    def reraise(self, error: NoCandidates) -> None:
        """When nothing was called because the prompt fits no window, the caller's request
        is at fault: raise the error that names the message too large to send."""
        called = [a for a in error.attempts if a.outcome is not Outcome.SKIPPED_CONTEXT_WINDOW]
        if self.too_large and not called:
            # The largest window's verdict: the message is too large even there.
            raise max(self.too_large.values(), key=lambda entry: entry[0])[1] from error


def _format_problem(fmt: ResponseFormat, completion: Completion) -> str | None:
    """Why the completion's text breaks the response format; tool calls and refusals are
    answers of their own and are not checked."""
    if completion.finish_reason in (FinishReason.TOOL_CALL, FinishReason.REFUSAL):
        return None
    return violation(fmt, completion.text)


def _stream_format_problem(
    options: GenerateOptions, finished: ChainFinished, text: str
) -> str | None:
    if finished.finish_reason in (FinishReason.TOOL_CALL, FinishReason.REFUSAL):
        return None
    return violation(options.response_format, text)


def _after(plan: RoutePlan, candidate: Candidate) -> RoutePlan:
    """The plan's candidates after `candidate`."""
    ids = [c.model_id for c in plan.candidates]
    rest = plan.candidates[ids.index(candidate.model_id) + 1 :]
    return RoutePlan(candidates=rest, refusal_fallback=plan.refusal_fallback)


def stored_reply(
    text: str,
    reason: FinishReason,
    refusal: Refusal | None,
    tool_calls: tuple[ToolCall, ...] = (),
) -> Message:
    """The assistant turn to store for a reply: its text, and its tool calls as parts
    (the caller's next turn answers them with ROLE_TOOL results).

    A refusal's words are what the model said, even when they came apart from the
    content (OpenAI). A reply with no text at all is stored as a short bracketed note
    instead: the APIs refuse an empty assistant message in a history, so an empty turn
    would break every later request of the conversation. A reply of tool calls alone
    needs no text.
    """
    if tool_calls:
        return Message(Role.ASSISTANT, text, parts=tool_calls)
    return Message(Role.ASSISTANT, _reply_text(text, reason, refusal))


def _reply_text(text: str, reason: FinishReason, refusal: Refusal | None) -> str:
    if text:
        return text
    if refusal is not None and refusal.text:
        return refusal.text
    if reason is FinishReason.REFUSAL:
        return "[no answer: the model refused]"
    return f"[no answer text: finish reason {reason.value}]"


class Generation:
    """Runs generate requests; built once at start-up and shared by every RPC."""

    def __init__(
        self,
        *,
        router: Router,
        chain: FallbackChain,
        context: ContextManager,
        counter: TokenCounter,
        conversations: ConversationService,
        safety_margin_tokens: int,
        gate: TenantGate | None = None,
    ) -> None:
        self._gate = gate
        self._safety_margin = safety_margin_tokens
        self._router = router
        self._chain = chain
        self._context = context
        self._counter = counter
        self._conversations = conversations

    async def _prepare(self, options: GenerateOptions) -> tuple[_Request, RoutePlan] | ReplayedTurn:
        gate = self._gate if options.tenant else None
        if gate is not None:
            gate.check(options.tenant, options)
        turn: ConversationTurn | None = None
        messages = options.messages
        if options.conversation_id:
            turn = await self._conversations.open_turn(
                options.conversation_id, messages, options.request_id, tenant=options.tenant
            )
            if turn.recorded:
                return _replayed(turn)
            if not options.messages:
                raise RequestError("messages", "must hold the new user turn")
            messages = turn.messages
            check_role_order(messages, offset=-len(turn.history))
        request = _Request(options, messages, turn, self._context)
        # Routing counts the prompt on each candidate synchronously; count it for every
        # model first, off the event loop when it is large.
        await self._counter.warm_all(messages)
        # The router compares against the whole window; fitting keeps a safety margin
        # free, so count it as part of the prompt here or the two would disagree.
        margin = self._safety_margin
        try:
            plan = self._router.plan(
                options,
                prompt_tokens=lambda model: self._counter.count_local(model, messages) + margin,
                min_prompt_tokens=lambda model: self._context.min_tokens(model, messages) + margin,
            )
        except NoCandidates as error:
            if all(a.outcome is Outcome.SKIPPED_CONTEXT_WINDOW for a in error.attempts):
                await self._raise_too_large(messages, [a.model for a in error.attempts])
            raise
        if gate is not None:
            plan = gate.restrict(options.tenant, plan)
        return request, plan

    async def _reserve(
        self, request: _Request, plan: RoutePlan, *, stream: bool, deadline: float
    ) -> Hold | None:
        tenant = request.options.tenant
        if self._gate is None or not tenant:
            return None
        messages = request.messages
        return await self._gate.reserve(
            tenant,
            plan,
            lambda model: self._counter.count_local(model, messages),
            stream=stream,
            deadline=deadline,
        )

    async def _raise_too_large(self, messages: Sequence[Message], models: list[str]) -> None:
        """Every model was skipped for its window: fit on the largest, which raises the
        RequestError naming the message that cannot be sent."""
        largest = max(models, key=lambda m: self._context.budget_tokens(m, 0))
        await self._context.fit(largest, messages, 1)

    async def generate(
        self, options: GenerateOptions, *, deadline: float
    ) -> GenerateOutcome | ReplayedTurn:
        prepared = await self._prepare(options)
        if isinstance(prepared, ReplayedTurn):
            return prepared
        request, plan = prepared
        hold = await self._reserve(request, plan, stream=False, deadline=deadline)
        if hold is None:
            return await self._complete(options, request, plan, deadline)
        try:
            outcome = await self._complete(options, request, plan, deadline)
        except asyncio.CancelledError:
            await hold.charge_bound()
            raise
        except BaseException:
            # Nothing when no model answered; else what the answers used.
            await hold.settle(request.spent_tokens, request.spent_usd)
            raise
        usage = outcome.result.usage
        await hold.settle(usage.input_tokens + usage.output_tokens, outcome.result.cost_usd)
        return outcome

    async def _complete(
        self, options: GenerateOptions, request: _Request, plan: RoutePlan, deadline: float
    ) -> GenerateOutcome:
        try:
            result = await self._chain.complete(plan, request.build, deadline=deadline)
        except NoCandidates as error:
            request.reraise(error)
            raise
        request.spend(result)
        result = await self._checked_format(options, request, plan, result, deadline)
        fitted = request.fits.get(result.candidate.model_id)
        usage = result.completion.usage
        # Only the provider's own figure teaches the estimate; a local count would echo it.
        if fitted is not None and usage is not None and usage.method is CountMethod.PROVIDER:
            self._counter.observe(result.candidate.model_id, fitted.messages, usage.input_tokens)
        if request.turn is not None:
            try:
                await self._conversations.record_turn(
                    request.turn,
                    stored_reply(
                        result.completion.text,
                        result.completion.finish_reason,
                        result.completion.refusal,
                        result.completion.tool_calls,
                    ),
                    model_id=result.candidate.model_id,
                    fitted=fitted,
                )
            except TurnAlreadyRecorded:
                # A concurrent call with the same id stored its answer first: answer with
                # that one, so every caller of this id sees the same stored turn.
                turn = await self._conversations.open_turn(
                    options.conversation_id,
                    options.messages,
                    options.request_id,
                    tenant=options.tenant,
                )
                recorded = _replayed(turn)
                return GenerateOutcome(
                    result,
                    fitted.report if fitted else None,
                    recorded.text,
                    recorded.tool_calls,
                )
        return GenerateOutcome(result, fitted.report if fitted else None)

    async def _checked_format(
        self,
        options: GenerateOptions,
        request: _Request,
        plan: RoutePlan,
        result: ChainResult,
        deadline: float,
    ) -> ChainResult:
        """`result` when its text matches the response format; else the next candidate's
        answer, asked once, when that one matches. `InvalidStructuredOutput` otherwise."""
        fmt = options.response_format
        problem = _format_problem(fmt, result.completion)
        if problem is None:
            return result
        first = f"{result.candidate.model_id}: {problem}"
        rest = _after(plan, result.candidate)
        log.warning(
            "structured_output_invalid",
            request_id=options.request_id,
            model=result.candidate.model_id,
            violation=problem,
            retry=bool(rest.candidates),
        )
        if not rest.candidates:
            raise InvalidStructuredOutput(f"the reply does not match response_format: {first}")
        try:
            second = await self._chain.complete(rest, request.build, deadline=deadline)
        except NoCandidates as error:
            raise InvalidStructuredOutput(
                f"the reply does not match response_format: {first}; no other candidate answered"
            ) from error
        request.spend(second)
        combined = dataclasses.replace(
            second,
            attempts=result.attempts + second.attempts,
            usage=result.usage + second.usage,
            cost_usd=result.cost_usd + second.cost_usd,
            fallback=True,
        )
        again = _format_problem(fmt, second.completion)
        if again is None:
            return combined
        raise InvalidStructuredOutput(
            f"the reply does not match response_format: {second.candidate.model_id}: "
            f"{again} (asked after {first})"
        )

    async def stream(
        self, options: GenerateOptions, *, deadline: float
    ) -> AsyncGenerator[ChainEvent | StreamClosed | ReplayedTurn, None]:
        """The chain's events, then `StreamClosed` once the turn is stored; or only a
        `ReplayedTurn` when the conversation already holds this request id's turn."""
        prepared = await self._prepare(options)
        if isinstance(prepared, ReplayedTurn):
            yield prepared
            return
        request, plan = prepared
        # Thinking, a refusal or a tool call is output as much as text is: once any has
        # come, a stream that ends without its finish is charged its bound.
        output_began = False
        finished: ChainFinished | None = None
        hold = await self._reserve(request, plan, stream=True, deadline=deadline)
        try:
            async with aclosing(
                self._chain.stream(plan, request.build, deadline=deadline)
            ) as events:
                async for event in events:
                    if isinstance(event, TextChunk | ThinkingChunk | RefusalChunk | ToolCallChunk):
                        output_began = True
                    if isinstance(event, ChainFinished):
                        finished = event
                        if hold is not None:
                            used = event.usage.input_tokens + event.usage.output_tokens
                            await hold.settle(used, event.cost_usd)
                        # The text has gone out: a stream cannot ask another model, so
                        # an invalid reply ends it with the violation instead of a finish.
                        problem = _stream_format_problem(options, event, event.text)
                        if problem is not None:
                            raise InvalidStructuredOutput(
                                "the reply does not match response_format: "
                                f"{event.candidate.model_id}: {problem}"
                            )
                    yield event
        except NoCandidates as error:
            request.reraise(error)
            raise
        finally:
            if hold is not None:  # no-ops once settled at the finish
                await (hold.charge_bound() if output_began else hold.release())
        if finished is None:
            return
        fitted = request.fits.get(finished.candidate.model_id)
        if request.turn is not None:
            reply = stored_reply(
                finished.text, finished.finish_reason, finished.refusal, finished.tool_calls
            )
            await self._conversations.record_turn(
                request.turn, reply, model_id=finished.candidate.model_id, fitted=fitted
            )
        yield StreamClosed(fitted.report if fitted else None)
