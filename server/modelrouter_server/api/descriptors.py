"""The file-descriptor budget: connections the router may hold, checked at start-up
against the process limit (RLIMIT_NOFILE), so it is refused on start rather than failing
`accept` or a provider connect under load with "too many open files"."""

from __future__ import annotations

import resource
from dataclasses import dataclass

from modelrouter_server.config.schema import RouterConfig


class DescriptorBudgetError(Exception):
    """The configured connections cannot fit under the process's descriptor limit."""


@dataclass(frozen=True, slots=True)
class DescriptorBudget:
    """What the configuration may open at once, and the limit in force."""

    needed: int
    limit: int


def needed_descriptors(config: RouterConfig) -> int:
    """Client connections + the provider pools + the reserve for everything else.

    Pools sized by the admission limit (no `max_connections`) are counted once between
    them: the server admits at most `max_concurrent_rpcs` calls, each holding one upstream
    connection at a time (idle keep-alive connections close after httpx's 5 s expiry).
    Counting each would make a default config with two providers need 4,176 descriptors
    and refuse to start under a common hard limit of 4,096."""
    admission = config.admission
    providers = config.providers.values()
    pools = sum(p.max_connections for p in providers if p.max_connections is not None)
    if any(p.max_connections is None for p in providers):
        pools += admission.max_concurrent_rpcs
    return admission.max_client_connections + pools + admission.reserved_file_descriptors


def ensure_descriptors(config: RouterConfig) -> DescriptorBudget:
    """Raise the soft RLIMIT_NOFILE to the hard limit when it is below what the config
    needs, or raise `DescriptorBudgetError` with a one-line message naming what to change.

    The whole hard limit rather than just `needed`: an in-process emulator holds the server
    end of its providers' connections in this process too."""
    needed = needed_descriptors(config)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise DescriptorBudgetError(
            f"admission: the configuration may open {needed} file descriptors "
            f"(admission.max_client_connections + providers.*.max_connections, or "
            f"admission.max_concurrent_rpcs once for the providers without one, + "
            f"admission.reserved_file_descriptors) "
            f"but the process limit is {soft} "
            f"(hard {hard}); lower them or raise `ulimit -n`"
        )
    return DescriptorBudget(needed=needed, limit=soft)
