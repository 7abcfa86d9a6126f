"""The router: which models may serve a request, in which order, before any call is made.

Routes are configuration (`routing.tasks`, `routing.default`). An explicit model goes first
and the task's route follows as fallbacks (unless `disable_fallback`). Each model is then
checked, cheapest check first; a model that fails a check is skipped with an
`AttemptRecord` saying why, so the caller can see every model that was considered:

1. capability (thinking budget, reasoning effort, output cap): SKIPPED_CAPABILITY
2. context window: the prompt plus the output budget must fit; when the context manager
   can shrink the history, only its smallest form (`min_prompt_tokens`) has to:
   SKIPPED_CONTEXT_WINDOW
3. cost cap (`max_cost_usd`), at the upper-bound estimate: SKIPPED_COST
4. endpoint unavailable (its circuit is open, or its half-open probe is in flight):
   SKIPPED_CIRCUIT_OPEN. The router asks an `Availability` callable, so it knows nothing
   of the breakers behind it.
"""

from __future__ import annotations

from collections.abc import Callable

from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome
from modelrouter_server.candidates import Candidate, RoutePlan
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.domain import GenerateOptions, Task
from modelrouter_server.errors import ModelNotFound, RequestError
from modelrouter_server.pricing import estimate_cost_usd
from modelrouter_server.quoting import quote
from modelrouter_server.routing.fitting import Unfit, candidate_for

TokenCount = Callable[[str], int]
"""Tokens of the request's prompt as counted for the given model id."""

Availability = Callable[[str, str], bool]
"""`available(provider, model_id)`: whether the endpoint may be called now (False while its
circuit is open). The composition root passes `BreakerRegistry.allows`."""


class Router:
    """Plans the candidates for one request. Holds configuration, no per-request state."""

    def __init__(self, config: RouterConfig, available: Availability) -> None:
        self._config = config
        self._available = available

    def route(self, task: Task) -> tuple[str, ...]:
        """The model ids configured for `task` (the default route when it has none)."""
        names = self._config.routing.tasks.get(task) or self._config.routing.default
        ids: list[str] = []
        for name in names:
            model_id = self._config.resolve(name)
            # Config validation guarantees every route name resolves.
            if model_id is not None and model_id not in ids:
                ids.append(model_id)
        return tuple(ids)

    def refusal_fallback(self, task: Task) -> bool:
        """Whether the route serving `task` passes a refusal on to its next model."""
        routing = self._config.routing
        route = task.value if task in routing.tasks else "default"
        return route in routing.refusal_fallback

    def plan(
        self,
        options: GenerateOptions,
        *,
        prompt_tokens: TokenCount,
        min_prompt_tokens: TokenCount | None = None,
    ) -> RoutePlan:
        """The candidates for `options`, in order, and the models skipped before any call.

        `prompt_tokens(model_id)` is the prompt as it stands; `min_prompt_tokens(model_id)`,
        when given, is the smallest the context manager can shrink it to (system, pinned
        and the last user turn). Raises `ModelNotFound` for an unknown explicit model,
        `RequestError` when the explicit model cannot take the request as asked, and
        `NoCandidates` when every model was filtered out.
        """
        explicit_id, order = self._order(options)
        candidates: list[Candidate] = []
        skipped: list[AttemptRecord] = []
        for model_id in order:
            config = self._config.models[model_id]
            explicit = model_id == explicit_id
            try:
                candidate = candidate_for(model_id, config, options, explicit=explicit)
            except Unfit as unfit:
                if explicit:
                    raise RequestError(unfit.field, unfit.reason) from None
                skipped.append(
                    _skip(model_id, config.provider, Outcome.SKIPPED_CAPABILITY, unfit.reason)
                )
                continue
            skip = self._filter(candidate, options, prompt_tokens, min_prompt_tokens)
            if skip is not None:
                skipped.append(skip)
                continue
            candidates.append(candidate)
            # Without fallback the first model that can serve is the only one.
            if options.disable_fallback:
                break

        if not candidates:
            reasons = "; ".join(f"{r.model}: {r.error}" for r in skipped)
            raise NoCandidates(f"no model can serve this request: {reasons}", skipped)
        return RoutePlan(
            candidates=tuple(candidates),
            skipped=tuple(skipped),
            refusal_fallback=self.refusal_fallback(options.task),
        )

    def _order(self, options: GenerateOptions) -> tuple[str | None, list[str]]:
        """The explicit model's id (None: not named) and the model ids to consider, in
        order: the explicit model, then (unless `disable_fallback`) the task's route."""
        route = self.route(options.task)
        if not options.model:
            return None, list(route)
        explicit_id = self._config.resolve(options.model)
        if explicit_id is None:
            known = ", ".join(sorted(self._config.models))
            raise ModelNotFound(
                "model", f"no model or alias {quote(options.model)} (configured: {known})"
            )
        if options.disable_fallback:
            return explicit_id, [explicit_id]
        return explicit_id, [explicit_id, *(m for m in route if m != explicit_id)]

    def _filter(
        self,
        candidate: Candidate,
        options: GenerateOptions,
        prompt_tokens: TokenCount,
        min_prompt_tokens: TokenCount | None,
    ) -> AttemptRecord | None:
        model_id, config = candidate.model_id, candidate.config
        window = config.context_window
        output = candidate.max_output_tokens
        prompt = prompt_tokens(model_id)
        if prompt + output > window:
            smallest = min_prompt_tokens(model_id) if min_prompt_tokens is not None else prompt
            if smallest + output > window:
                return _skip(
                    model_id,
                    candidate.provider,
                    Outcome.SKIPPED_CONTEXT_WINDOW,
                    f"context window of {window} tokens cannot hold the prompt "
                    f"({smallest} tokens at the least) plus {output} output tokens",
                )
        if options.max_cost_usd > 0:
            # The context manager fits the prompt into the window, so no more than that
            # is billed.
            billed_prompt = min(prompt, window - output)
            estimate = estimate_cost_usd(config.pricing, billed_prompt, output)
            if estimate > options.max_cost_usd:
                return _skip(
                    model_id,
                    candidate.provider,
                    Outcome.SKIPPED_COST,
                    f"estimated cost ${estimate:.4f} is above "
                    f"max_cost_usd ${options.max_cost_usd:.4f}",
                )
        if not self._available(candidate.provider, model_id):
            return _skip(model_id, candidate.provider, Outcome.SKIPPED_CIRCUIT_OPEN, "circuit open")
        return None


def _skip(model_id: str, provider: str, outcome: Outcome, reason: str) -> AttemptRecord:
    return AttemptRecord(model=model_id, provider=provider, outcome=outcome, error=reason)
