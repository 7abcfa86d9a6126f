"""What a tenant may do on the request path: which models and tasks, and how much.

    gate.check(tenant, options)                 # explicit model / task allowed?
    plan = gate.restrict(tenant, plan)          # drop route candidates it may not use
    hold = await gate.reserve(tenant, plan, prompt_tokens, stream=..., deadline=...)
    ... the chain runs ...
    await hold.settle(tokens, cost_usd)         # or hold.release() / hold.charge_bound()

The reservation is the request's upper bound: for each candidate, its prompt tokens plus
its `max_output_tokens`, priced at that model's rates; the largest over the candidates
(only one of them answers). Settling replaces the bound with what the answer really used.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import structlog

from modelrouter_server.candidates import RoutePlan
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.domain import GenerateOptions, Task
from modelrouter_server.errors import NotPermitted, QuotaExceeded, StoreError
from modelrouter_server.quoting import quote
from modelrouter_server.tenancy.ledger import (
    Ledger,
    Limits,
    Reservation,
    TenantUsage,
    new_reservation_id,
)
from modelrouter_server.tenancy.metrics import TenantMetrics

log = structlog.get_logger(__name__)


class Hold:
    """One admitted request's reservation; settle it exactly once (later calls do
    nothing), whatever way the request ends."""

    def __init__(self, gate: TenantGate, reservation: Reservation, *, recorded: bool) -> None:
        self._gate = gate
        self.reservation = reservation
        self._recorded = recorded
        self._settled = False

    async def settle(self, tokens: int, cost_usd: float) -> None:
        """The request's real use."""
        if self._settled:
            return
        self._settled = True
        await self._gate._settle(self.reservation, tokens, cost_usd, recorded=self._recorded)

    async def release(self) -> None:
        """The request failed before any provider produced output: it used nothing."""
        await self.settle(0, 0.0)

    async def charge_bound(self) -> None:
        """The request ended with its use unknown (cancelled, or broken mid-answer):
        charge the bound, so a budget is never under-counted."""
        await self.settle(self.reservation.tokens, self.reservation.cost_usd)


class TenantGate:
    """Per-tenant permissions and limits, over one ledger shared with other processes."""

    def __init__(
        self,
        config: RouterConfig,
        ledger: Ledger,
        metrics: TenantMetrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._limits = {name: Limits.of(t) for name, t in config.tenants.items()}
        self._models: dict[str, frozenset[str]] = {}
        for name, tenant in config.tenants.items():
            if tenant.allowed_models:
                resolved = (config.resolve(m) for m in tenant.allowed_models)
                self._models[name] = frozenset(m for m in resolved if m is not None)
        self._tasks = {
            name: frozenset(t.allowed_tasks)
            for name, t in config.tenants.items()
            if t.allowed_tasks
        }

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def _refused(self, tenant: str, limit: str) -> None:
        if self._metrics is not None:
            self._metrics.observe_refused(tenant, limit)

    def check(self, tenant: str, options: GenerateOptions) -> None:
        """`NotPermitted` when the request names a model or task the tenant may not use."""
        tasks = self._tasks.get(tenant)
        if tasks is not None and options.task is not Task.UNSPECIFIED and options.task not in tasks:
            self._refused(tenant, "allowed_tasks")
            raise NotPermitted(tenant, "task", f"task {quote(options.task.value)}")
        models = self._models.get(tenant)
        if models is not None and options.model:
            model_id = self._config.resolve(options.model)
            if model_id is not None and model_id not in models:
                self._refused(tenant, "allowed_models")
                raise NotPermitted(tenant, "model", f"model {quote(model_id)}")

    def check_model(self, tenant: str, model_id: str) -> None:
        """`NotPermitted` when the tenant may not use `model_id` (a resolved id): for the
        RPCs that reach a model without a route (CountTokens)."""
        models = self._models.get(tenant)
        if models is not None and model_id not in models:
            self._refused(tenant, "allowed_models")
            raise NotPermitted(tenant, "model", f"model {quote(model_id)}")

    def restrict(self, tenant: str, plan: RoutePlan) -> RoutePlan:
        """`plan` without the candidates the tenant may not use; `NotPermitted` naming
        them when none is left."""
        models = self._models.get(tenant)
        if models is None:
            return plan
        allowed = tuple(c for c in plan.candidates if c.model_id in models)
        if allowed:
            return dataclasses.replace(plan, candidates=allowed)
        if not plan.candidates:
            return plan  # nothing to call anyway: the chain reports why
        self._refused(tenant, "allowed_models")
        names = ", ".join(quote(c.model_id) for c in plan.candidates)
        raise NotPermitted(tenant, "model", f"the route's models ({names})")

    async def reserve(
        self,
        tenant: str,
        plan: RoutePlan,
        prompt_tokens: Callable[[str], int],
        *,
        stream: bool,
        deadline: float,
    ) -> Hold:
        """Admit the request against the tenant's limits at its upper bound, or raise
        `QuotaExceeded` (RESOURCE_EXHAUSTED with when to retry) having taken nothing."""
        tokens, cost = 0, 0.0
        for candidate in plan.candidates:
            prompt = prompt_tokens(candidate.model_id)
            price = candidate.config.pricing
            tokens = max(tokens, prompt + candidate.max_output_tokens)
            cost = max(
                cost,
                (
                    prompt * price.input_per_mtok
                    + candidate.max_output_tokens * price.output_per_mtok
                )
                / 1_000_000,
            )
        # A lease outlives the request, so only a crashed process's reservations expire.
        lease = max(self._config.ledger.stream_lease_s, deadline - self._clock() + 60.0)
        limits = self._limits.get(tenant, Limits())
        recorded = True
        try:
            reservation = await self._ledger.reserve(
                tenant, limits, tokens=tokens, cost_usd=cost, stream=stream, lease_s=lease
            )
        except QuotaExceeded as exc:
            self._refused(tenant, exc.limit)
            raise
        except StoreError as exc:
            if limits != Limits():
                raise  # limits that cannot be checked are not waived: UNAVAILABLE
            # Nothing to enforce for this tenant: serve, and say the usage went unrecorded.
            log.warning("ledger_unavailable", tenant=tenant, error=str(exc))
            reservation = Reservation(
                tenant, new_reservation_id(), tokens, cost, stream, "", "", None
            )
            recorded = False
        if self._metrics is not None:
            self._metrics.observe_admitted(tenant)
        return Hold(self, reservation, recorded=recorded)

    async def _settle(
        self, reservation: Reservation, tokens: int, cost_usd: float, *, recorded: bool
    ) -> None:
        if self._metrics is not None:
            self._metrics.observe_settled(reservation.tenant, tokens, cost_usd)
        if not recorded:
            return
        try:
            await self._ledger.settle(reservation, tokens=tokens, cost_usd=cost_usd)
        except StoreError as exc:
            # The answer was already given; losing this record must not turn it into an
            # error. The hold expires with its lease.
            log.error("ledger_settle_failed", tenant=reservation.tenant, error=str(exc))

    async def usage(self, tenant: str) -> TenantUsage:
        usage = await self._ledger.usage(tenant)
        if self._metrics is not None:
            self._metrics.observe_usage(usage)
        return usage

    def limits(self, tenant: str) -> Limits:
        return self._limits.get(tenant, Limits())
