"""Per-tenant Prometheus series, in the server's registry.

The `tenant` label takes only names from the config (the configured tenants and the default
tenant), so its cardinality is fixed at start-up whatever callers send.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from modelrouter_server.tenancy.ledger import TenantUsage


class TenantMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        tenants: Iterable[str],
        *,
        namespace: str = "modelrouter",
    ) -> None:
        self._names = frozenset(tenants)
        self.admitted = Counter(
            "tenant_requests_admitted_total",
            "Generate requests a tenant's limits admitted.",
            ["tenant"],
            namespace=namespace,
            registry=registry,
        )
        self.refused = Counter(
            "tenant_requests_refused_total",
            "Requests refused by a tenant limit or permission, by the limit's config name.",
            ["tenant", "limit"],
            namespace=namespace,
            registry=registry,
        )
        self.tokens = Counter(
            "tenant_tokens_total",
            "Input + output tokens settled for a tenant.",
            ["tenant"],
            namespace=namespace,
            registry=registry,
        )
        self.cost = Counter(
            "tenant_cost_usd_total",
            "Spend settled for a tenant, USD.",
            ["tenant"],
            namespace=namespace,
            registry=registry,
        )
        self.spend_day = Gauge(
            "tenant_spend_usd_today",
            "A tenant's spend in the current UTC day as the ledger last reported it "
            "(shared by every worker and replica on the same ledger).",
            ["tenant"],
            namespace=namespace,
            registry=registry,
            # Every worker reads the same ledger: the latest reading is the answer.
            multiprocess_mode="mostrecent",
        )

    def _label(self, tenant: str) -> str:
        # Only configured names reach here; anything else would be a bug, kept bounded.
        return tenant if tenant in self._names else "other"

    def observe_admitted(self, tenant: str) -> None:
        self.admitted.labels(self._label(tenant)).inc()

    def observe_refused(self, tenant: str, limit: str) -> None:
        self.refused.labels(self._label(tenant), limit).inc()

    def observe_settled(self, tenant: str, tokens: int, cost_usd: float) -> None:
        label = self._label(tenant)
        self.tokens.labels(label).inc(max(tokens, 0))
        self.cost.labels(label).inc(max(cost_usd, 0.0))

    def observe_usage(self, usage: TenantUsage) -> None:
        self.spend_day.labels(self._label(usage.tenant)).set(usage.day.cost_usd)
