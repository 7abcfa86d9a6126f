"""Several worker processes sharing one gRPC port (`modelrouter serve --workers N`): the
plan (how many, each one's share of the limits), the supervisor, and the worker's side.
README "Workers" says what each worker keeps to itself and what they share."""

from modelrouter_server.workers.plan import WorkerSpec, cores, per_worker, worker_count
from modelrouter_server.workers.serve import serve_workers
from modelrouter_server.workers.worker import serve_worker

__all__ = [
    "WorkerSpec",
    "cores",
    "per_worker",
    "serve_worker",
    "serve_workers",
    "worker_count",
]
