"""Fitting a request to one model: its output budget, thinking, reasoning effort and
temperature, worked out into a `Candidate`.

A model that cannot take the request as asked raises `Unfit`; the router turns that into a
`RequestError` for the model the caller named and into a skipped candidate for a route's
fallbacks (a fallback's limits are not the caller's mistake).
"""

from __future__ import annotations

from modelrouter_server.candidates import Candidate
from modelrouter_server.config.schema import ModelConfig
from modelrouter_server.domain import GenerateOptions, Task
from modelrouter_server.validation import thinking_budget_problem

REASONING_THINKING_BUDGET = 2048
"""Thinking enabled by default for TASK_REASONING on a thinking-capable model: enough to
help on multi-step problems, small enough to keep latency and cost close to a plain call."""

MIN_TEXT_AFTER_THINKING = 1024
"""Output left for the answer itself when thinking is switched on by default."""


class Unfit(Exception):
    """A model cannot serve the request as asked; `field` is the request field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def candidate_for(
    model_id: str, config: ModelConfig, options: GenerateOptions, *, explicit: bool
) -> Candidate:
    """Work out the request settings of `options` for one model, or raise `Unfit`."""
    caps = config.capabilities
    cap = config.max_output_tokens
    requested = options.max_output_tokens
    if options.uses_tools and not caps.tools:
        raise Unfit("tools", f"{model_id} does not take tools")
    if options.uses_images and not caps.vision:
        raise Unfit("messages", f"{model_id} does not take images")
    if requested > cap:
        if explicit:
            raise Unfit("max_output_tokens", f"{requested} is above {model_id}'s limit of {cap}")
        # A fallback serves "at most N tokens" with its own, lower limit; a cut answer
        # reports finish_reason LENGTH, which the caller can see.
        requested = cap

    output, budget = _output_and_thinking(model_id, config, options, requested)

    effort = options.reasoning_effort
    if effort is not None and not caps.reasoning_effort:
        raise Unfit("reasoning_effort", f"{model_id} does not take a reasoning effort")

    # Dropped, not refused: o-series models reject temperature, and Anthropic requires the
    # default temperature while thinking is on.
    temperature = options.temperature if caps.temperature and budget is None else None

    return Candidate(
        model_id=model_id,
        provider=config.provider,
        config=config,
        max_output_tokens=output,
        thinking_budget_tokens=budget,
        reasoning_effort=effort,
        temperature=temperature,
        explicit=explicit,
    )


def _output_and_thinking(
    model_id: str, config: ModelConfig, options: GenerateOptions, requested: int
) -> tuple[int, int | None]:
    """The output tokens to ask `model_id` for and its thinking budget (None: off), from
    the caller's budget or the reasoning task's default; `Unfit` if the model cannot."""
    caps = config.capabilities
    cap = config.max_output_tokens
    budget: int | None = options.thinking_budget_tokens or None
    if budget is not None:
        if not caps.thinking:
            raise Unfit("thinking_budget_tokens", f"{model_id} does not support extended thinking")
        output = requested or min(cap, budget + config.default_output_tokens)
        problem = thinking_budget_problem(budget, output)
        if problem is not None:
            raise Unfit("thinking_budget_tokens", f"{budget} {problem} for {model_id}")
    else:
        output = requested or min(config.default_output_tokens, cap)
        # Not with tools: Anthropic wants each earlier tool call's thinking sent back, and
        # a history from another provider has none.
        if (
            options.task is Task.REASONING
            and caps.thinking
            and options.reasoning_effort is None
            and not options.uses_tools
        ):
            if not requested:
                text_room = max(config.default_output_tokens, MIN_TEXT_AFTER_THINKING)
                output = min(cap, REASONING_THINKING_BUDGET + text_room)
            # A caller who asked for a short answer keeps it: thinking is only switched on
            # when the answer still has room after the budget.
            if output >= REASONING_THINKING_BUDGET + MIN_TEXT_AFTER_THINKING:
                budget = REASONING_THINKING_BUDGET
    return output, budget
