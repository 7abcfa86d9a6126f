"""Graceful drain, the order of a shutdown (SIGTERM):

1. health turns NOT_SERVING at once, so load balancers stop sending;
2. new RPCs are refused with UNAVAILABLE by admission (the port stays open, so a caller
   gets a status that says "go elsewhere", not "failed to connect");
3. the RPCs in flight get `grace_s` to finish;
4. those still running then end with UNAVAILABLE: their work is cancelled, which closes
   the provider request, and a conversation turn is stored only once its answer is whole,
   so nothing is half-stored. A stream whose client stopped reading cannot be given our
   status (grpc queues trailers behind the unread messages, and aborts from outside the
   call fail): it ends at step 5 with grpc's UNAVAILABLE "Cancelling all calls", logged
   and counted as UNAVAILABLE;
5. the grpc server stops.
"""

from __future__ import annotations

import structlog
from modelrouter_server.api.admission import Admission
from modelrouter_server.api.server import GrpcServer

log = structlog.get_logger(__name__)

# After the grace, how long the ended calls get to send their UNAVAILABLE.
_FAREWELL_S = 2.0


async def drain(server: GrpcServer, admission: Admission, grace_s: float) -> None:
    """Shut `server` down in the order of the module docstring."""
    await server.set_not_serving()
    admission.start_draining()
    log.info("draining", in_flight=admission.in_flight, grace_s=grace_s)
    if await admission.wait_idle(grace_s):
        log.info("drained")
    else:
        ended = admission.expire()
        log.warning("drain_grace_expired", ended=ended, grace_s=grace_s)
        await admission.wait_idle(_FAREWELL_S)
    await server.stop(0)
