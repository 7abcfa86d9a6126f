"""A tenant's usage and limits in their proto form (the GetUsage reply)."""

from __future__ import annotations

from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_server.config.security import TenantConfig
from modelrouter_server.domain import Task
from modelrouter_server.tenancy.ledger import Limits, PeriodUsage, TenantUsage

_TASKS = {
    Task.UNSPECIFIED: pb.TASK_UNSPECIFIED,
    Task.CHAT: pb.TASK_CHAT,
    Task.REASONING: pb.TASK_REASONING,
    Task.CODE: pb.TASK_CODE,
    Task.SUMMARIZE: pb.TASK_SUMMARIZE,
    Task.EXTRACT: pb.TASK_EXTRACT,
}


def _period(usage: PeriodUsage) -> pb.PeriodUsage:
    return pb.PeriodUsage(
        period=usage.period,
        cost_usd=usage.cost_usd,
        tokens=usage.tokens,
        requests=usage.requests,
        held_usd=usage.held_usd,
    )


def usage_to_pb(
    usage: TenantUsage, limits: Limits, tenant: TenantConfig | None
) -> pb.GetUsageResponse:
    return pb.GetUsageResponse(
        tenant=usage.tenant,
        day=_period(usage.day),
        month=_period(usage.month),
        open_streams=usage.streams,
        limits=pb.TenantLimits(
            requests_per_minute=limits.requests_per_minute or 0,
            tokens_per_minute=limits.tokens_per_minute or 0,
            max_concurrent_streams=limits.max_concurrent_streams or 0,
            budget_usd_per_day=limits.budget_usd_per_day or 0.0,
            budget_usd_per_month=limits.budget_usd_per_month or 0.0,
            allowed_models=list(tenant.allowed_models) if tenant else [],
            allowed_tasks=[_TASKS[t] for t in tenant.allowed_tasks] if tenant else [],
        ),
    )
