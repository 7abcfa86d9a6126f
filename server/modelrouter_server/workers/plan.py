"""How many workers, what each may take, and what the supervisor tells a worker it starts.

Per-server limits keep their documented meaning with several workers: each worker gets
its share of `[admission]` and of a tenant's `max_concurrent_rpcs` (rounded down, at
least 1), so N workers together admit no more than one server did. What lives in the
ledger (tenant rates, streams, budgets) or a shared store is shared already.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from modelrouter_server.config import ConfigError, RouterConfig
from modelrouter_server.config.schema import StoreKind


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_count(config: RouterConfig, requested: int | None) -> int:
    """The number of workers to run: `requested` (`--workers`), else `server.workers`; 0
    means one per core. `ConfigError` when several would each keep their own conversations
    (the memory store); asked for "one per core", such a config gets one worker."""
    wanted = config.server.workers if requested is None else requested
    count = wanted or cores()
    if count > 1 and config.context.store is StoreKind.MEMORY:
        if wanted == 0:
            return 1
        source = "--workers" if requested is not None else "server.workers"
        raise ConfigError(
            f'{source}: {count} workers cannot share context.store = "memory" (each would'
            ' keep its own conversations): use "sqlite" or "redis", or one worker'
        )
    return count


def _share(limit: int, count: int) -> int:
    return max(1, limit // count)


def per_worker(config: RouterConfig, count: int) -> RouterConfig:
    """`config` as one of `count` workers runs it: its share of the per-server limits."""
    if count == 1:
        return config
    admission = config.admission
    shared = admission.model_copy(
        update={
            "max_concurrent_rpcs": _share(admission.max_concurrent_rpcs, count),
            "max_concurrent_streams": _share(admission.max_concurrent_streams, count),
            "max_client_connections": _share(admission.max_client_connections, count),
            "max_pending_calls": _share(admission.max_pending_calls, count),
        }
    )
    tenants = {
        name: tenant
        if tenant.max_concurrent_rpcs is None
        else tenant.model_copy(
            update={"max_concurrent_rpcs": _share(tenant.max_concurrent_rpcs, count)}
        )
        for name, tenant in config.tenants.items()
    }
    return config.model_copy(update={"admission": shared, "tenants": tenants})


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor hands a worker on its command line (`serve --worker JSON`)."""

    index: int
    count: int
    line_fd: int
    """The worker's end of a socket pair: it writes `ready` on it once serving, and reads
    end-of-file from it when the supervisor is gone (then it drains and exits)."""
    emulator_url: str | None

    def to_arg(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_arg(cls, text: str) -> WorkerSpec:
        fields = json.loads(text)
        return cls(
            index=int(fields["index"]),
            count=int(fields["count"]),
            line_fd=int(fields["line_fd"]),
            emulator_url=fields["emulator_url"],
        )
