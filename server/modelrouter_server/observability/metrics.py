"""Prometheus metrics: one `Metrics` object per server, owning its own registry.

Nothing here touches `prometheus_client`'s global registry, so two servers (or two tests)
in one process never share counters. The error boundary records each RPC once it ends,
however it ends, with `observe` (one `RequestSummary`: status, latency, answer, every
attempt), token gaps with `observe_inter_token`, and wraps a stream's lifetime in
`track_stream()`; the breakers report state changes with `set_breaker_state`.
`start_http` serves `/metrics` from a daemon thread, so a scrape never waits on the event
loop.

With several workers (PROMETHEUS_MULTIPROC_DIR set by the supervisor) every worker's
series go to files in that directory and `AggregatedMetrics`, in the supervisor, serves
their sum: counters and histograms add up; each gauge says how (`multiprocess_mode`).

The names, labels and meaning of every series are listed in docs/metrics.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics import MetricWrapperBase

from modelrouter_server.attempts import AttemptRecord
from modelrouter_server.domain import CountMethod
from modelrouter_server.error_facts import attempt_status
from modelrouter_server.observability.summary import RequestSummary

# LLM calls span four orders of magnitude: a cached short answer returns in ~100 ms, a long
# reasoning answer takes minutes. The buckets are dense where SLOs are set (0.5-10 s) and
# reach 5 minutes, the client's default deadline.
REQUEST_BUCKETS_S: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0,
    300.0,
)  # fmt: skip
# Time to first token: tens of milliseconds (emulator, small models) to tens of seconds (a
# reasoning model thinking before it speaks, bounded by the TTFT timeout, 30 s by default).
TTFT_BUCKETS_S: tuple[float, ...] = (
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0,
)  # fmt: skip
# Gaps between tokens: 10-100 tokens/s is typical (10-100 ms); a gap over a second is a
# stall worth seeing, and the inter-token timeout (30 s by default) caps it.
INTER_TOKEN_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
)  # fmt: skip
# Waiting for a pooled upstream connection: none at all (microseconds) when the pool has
# room; a pool too small for the load makes calls queue for up to `pool_timeout_s` (10 s).
POOL_WAIT_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Upstream tries are shorter than requests (a request may hold several) but as wide.
ATTEMPT_BUCKETS_S: tuple[float, ...] = REQUEST_BUCKETS_S

_MP = ("model", "provider")

GaugeMode = Literal["livesum", "livemax", "mostrecent"]
"""How a gauge's values from several workers combine (prometheus_client's
`multiprocess_mode`; "live": only workers still running count)."""

BREAKER_STATE_VALUES: dict[str, int] = {"closed": 0, "half-open": 1, "open": 2}
"""The value of `modelrouter_circuit_breaker_state` for each breaker state."""

# Empty label values read as a missing label in PromQL; a request that failed before a
# model was chosen is labelled "none" instead, so it can be selected.
_NONE = "none"


def _label(value: str) -> str:
    return value or _NONE


def _breaker_state(state: str) -> str:
    # aiobreaker names them "closed", "open", "half-open"; accept "half_open" too.
    normalized = state.strip().lower().replace("_", "-")
    if normalized not in BREAKER_STATE_VALUES:
        raise ValueError(
            f"unknown circuit breaker state {state!r}; expected one of "
            f"{', '.join(BREAKER_STATE_VALUES)}"
        )
    return normalized


class Metrics:
    """The router's Prometheus series, in a registry of its own.

    Every method is cheap and thread-safe (prometheus_client locks per series), so it can be
    called from the event loop on every token.
    """

    def __init__(self, *, namespace: str = "modelrouter") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._ns = namespace
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}
        self._declare_requests()
        self._declare_spend()
        self._declare_resilience()
        self._declare_answers()
        self._declare_capacity()
        self._breaker_states: dict[tuple[str, str], str] = {}
        self._breaker_lock = threading.Lock()
        self._endpoint = _Endpoint()

    # Declaring -----------------------------------------------------------------------------

    def _declare_requests(self) -> None:
        """Per RPC: outcome and latency."""
        self._requests = self._counter(
            "requests",
            "RPCs handled, by method, answering model and provider, and gRPC status code.",
            "rpc", *_MP, "code",
        )  # fmt: skip
        self._request_duration = self._histogram(
            "request_duration_seconds",
            "Wall time of an RPC, from arrival to its last message or error.",
            REQUEST_BUCKETS_S, "rpc", "model",
        )  # fmt: skip
        self._ttft = self._histogram(
            "time_to_first_token_seconds",
            "Time from a GenerateStream call's arrival to its first answer token.",
            TTFT_BUCKETS_S, "model",
        )  # fmt: skip
        self._inter_token = self._histogram(
            "inter_token_latency_seconds",
            "Gap between consecutive answer deltas sent on a stream.",
            INTER_TOKEN_BUCKETS_S, "model",
        )  # fmt: skip

    def _declare_spend(self) -> None:
        """Tokens and money, per answering model."""
        mp = _MP
        self._input_tokens = self._counter(
            "input_tokens", "Prompt tokens billed by providers.", *mp
        )
        self._output_tokens = self._counter(
            "output_tokens", "Completion tokens billed by providers (reasoning included).", *mp
        )
        self._reasoning_tokens = self._counter(
            "reasoning_tokens",
            "Of the output tokens, those spent on hidden reasoning or thinking.",
            *mp,
        )
        self._cost = self._counter(
            "cost_usd",
            "Spend at catalog prices, in US dollars, summed over every billed attempt.",
            *mp,
        )

    def _declare_resilience(self) -> None:
        """What the retry loop, the fallback chain and stream resumption did."""
        mp = _MP
        self._attempts = self._counter(
            "upstream_attempts",
            "Upstream tries and skipped candidates, by outcome and the gRPC code it maps to.",
            *mp, "outcome", "code",
        )  # fmt: skip
        self._attempt_duration = self._histogram(
            "upstream_attempt_duration_seconds",
            "Wall time of one upstream try (skipped candidates are not observed).",
            ATTEMPT_BUCKETS_S, *mp,
        )  # fmt: skip
        self._retries = self._counter(
            "retries", "Upstream tries that repeated a failed try on the same model.", *mp
        )
        self._fallbacks = self._counter(
            "fallbacks",
            "Requests answered by a model other than the first candidate (label: answerer).",
            *mp,
        )
        self._resumed = self._counter(
            "resumed_streams",
            "Streams continued on another model after breaking mid-answer (label: finisher).",
            *mp,
        )

    def _declare_answers(self) -> None:
        """How answers ended, and how their usage was counted."""
        mp = _MP
        self._finishes = self._counter(
            "finish_reasons",
            "Answers by why they ended (stop, length, refusal, ..., unknown).",
            *mp, "reason",
        )  # fmt: skip
        self._refusals = self._counter(
            "refusals",
            "Answers that were refusals (label: the model that refused and answered).",
            *mp,
        )
        self._local_usage = self._counter(
            "usage_counted_locally",
            "Answers whose billed usage includes the router's own token count (a provider "
            "sent no usage for at least one of its attempts), by the least exact method.",
            *mp, "method",
        )  # fmt: skip

    def _declare_capacity(self) -> None:
        """Breakers, open streams, connection pools."""
        # Each worker has its own breakers: across workers, the most open one shows.
        self._breaker_state = self._gauge(
            "circuit_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            "provider", "model", mode="livemax",
        )  # fmt: skip
        self._breaker_transitions = self._counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes per endpoint.",
            "provider", "model", "from_state", "to_state",
        )  # fmt: skip
        self._inflight_streams = self._gauge(
            "inflight_streams", "GenerateStream calls open now.", mode="livesum"
        )
        self._pool_timeouts = self._counter(
            "upstream_pool_timeouts",
            "Provider calls that found no free pooled connection within pool_timeout_s.",
            "provider",
        )
        self._pool_wait = self._histogram(
            "upstream_pool_wait_seconds",
            "Time a provider call waited for a pooled connection before it got one.",
            POOL_WAIT_BUCKETS_S, "provider",
        )  # fmt: skip

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """`metric.labels(*values)`, kept: prometheus_client checks and converts the label
        values on every `labels` call, and these are called per request and per token."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            # Two threads may both miss: `labels` hands both the same child.
            child = self._children[key] = metric.labels(*values)
        return child

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, namespace=self._ns, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str, mode: GaugeMode) -> Gauge:
        return Gauge(
            name, doc, labels, namespace=self._ns, registry=self.registry, multiprocess_mode=mode
        )

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(
            name, doc, labels, namespace=self._ns, buckets=buckets, registry=self.registry
        )

    # Recording ---------------------------------------------------------------------------

    def observe(self, summary: RequestSummary) -> None:
        """Record one finished RPC, however it ended.

        `model`/`provider` are the ones that answered ("none" when none did). Usage and
        cost are the totals over every billed attempt, so tokens a failed attempt burned
        are counted; every attempt, also of a failed request, is counted by outcome.
        """
        model, provider = _label(summary.model), _label(summary.provider)
        self._child(self._requests, summary.rpc, model, provider, summary.code.name).inc()
        self._child(self._request_duration, summary.rpc, model).observe(summary.latency_s)
        if summary.ttft_s is not None:
            self._child(self._ttft, model).observe(summary.ttft_s)
        usage = summary.usage
        for series, amount in (
            (self._input_tokens, usage.input_tokens),
            (self._output_tokens, usage.output_tokens),
            (self._reasoning_tokens, usage.reasoning_tokens),
            (self._cost, summary.cost_usd),
        ):
            if amount:
                self._child(series, model, provider).inc(amount)
        if summary.fallback:
            self._child(self._fallbacks, model, provider).inc()
        if summary.resumed:
            self._child(self._resumed, model, provider).inc()
        if summary.finish_reason is not None:
            self._observe_finish(summary, model, provider)
        for attempt, retry in zip(summary.attempts, summary.retries(), strict=True):
            self._observe_attempt(attempt, retry=retry)

    def _observe_finish(self, summary: RequestSummary, model: str, provider: str) -> None:
        """How one answer ended, and how its usage was counted when the provider sent none."""
        assert summary.finish_reason is not None
        self._child(self._finishes, model, provider, summary.finish_reason.value).inc()
        if summary.refusal is not None:
            self._child(self._refusals, model, provider).inc()
        if summary.usage.method is not CountMethod.PROVIDER:
            self._child(self._local_usage, model, provider, summary.usage.method.value).inc()

    def _observe_attempt(self, attempt: AttemptRecord, *, retry: bool) -> None:
        model, provider = _label(attempt.model), _label(attempt.provider)
        outcome = attempt.outcome.value
        self._child(self._attempts, model, provider, outcome, attempt_status(attempt).name).inc()
        if not outcome.startswith("skipped"):
            self._child(self._attempt_duration, model, provider).observe(attempt.latency_ms / 1000)
        if retry:
            self._child(self._retries, model, provider).inc()

    def observe_pool_timeout(self, provider: str) -> None:
        """A provider call waited `pool_timeout_s` for a connection and gave up."""
        self._child(self._pool_timeouts, _label(provider)).inc()

    def observe_pool_wait(self, provider: str, seconds: float) -> None:
        """A provider call got a pooled connection after waiting `seconds`."""
        self._child(self._pool_wait, _label(provider)).observe(seconds)

    def observe_inter_token(self, model: str, seconds: float) -> None:
        """Record the gap between two consecutive answer deltas of a stream."""
        self._child(self._inter_token, _label(model)).observe(seconds)

    def set_breaker_state(
        self, provider: str, model: str, state: str, *, previous: str | None = None
    ) -> None:
        """Record a circuit breaker's state ("closed", "half-open" or "open").

        Each report of a state different from the last one counts a transition. The first
        report for an endpoint counts one only when it names the `previous` state (a
        breaker reports its first change, never its initial state); without it, it is the
        initial state.
        """
        new = _breaker_state(state)
        key = (provider, model)
        with self._breaker_lock:
            initial = None if previous is None else _breaker_state(previous)
            old = self._breaker_states.get(key, initial)
            self._breaker_states[key] = new
        self._breaker_state.labels(provider, model).set(BREAKER_STATE_VALUES[new])
        if old is not None and old != new:
            self._breaker_transitions.labels(provider, model, old, new).inc()

    @contextmanager
    def track_stream(self) -> Iterator[None]:
        """Count a stream as in flight for the duration of the `with` block.

        The gauge goes down however the block ends: normally, on error, or on cancellation.
        """
        self._inflight_streams.inc()
        try:
            yield
        finally:
            self._inflight_streams.dec()

    # Exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what `/metrics` serves)."""
        return generate_latest(self.registry)

    def start_http(self, host: str, port: int) -> int:
        """Serve `/metrics` on `host:port` from a daemon thread; returns the bound port
        (useful with port 0). Raises `OSError` when the address cannot be bound."""
        return self._endpoint.start(self.registry, host, port)

    def stop_http(self) -> None:
        """Stop the endpoint and close its socket; does nothing if it is not running."""
        self._endpoint.stop()


class _Endpoint:
    """`/metrics` served from a daemon thread, so a scrape never waits on the event loop."""

    def __init__(self) -> None:
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, registry: CollectorRegistry, host: str, port: int) -> int:
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already running")
        self._http, self._thread = start_http_server(port, addr=host, registry=registry)
        return int(self._http.server_port)

    def stop(self) -> None:
        server, thread = self._http, self._thread
        self._http = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)


class AggregatedMetrics:
    """The supervisor's `/metrics`: the sum of every worker's series, read from the
    multiprocess `directory` at each scrape."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
        self._endpoint = _Endpoint()

    def start_http(self, host: str, port: int) -> int:
        """As `Metrics.start_http`."""
        return self._endpoint.start(self.registry, host, port)

    def stop_http(self) -> None:
        self._endpoint.stop()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def worker_gone(self, pid: int) -> None:
        """Drop a dead worker's "live" gauges (its counters keep counting in the sums)."""
        multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
