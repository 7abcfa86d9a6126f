"""Prometheus metrics: one `Metrics` object per server, owning its own registry.

Nothing here touches `prometheus_client`'s global registry, so two servers (or two tests)
in one process never share counters. The servicer records each RPC once it ends with
`observe_request`, its upstream tries with `observe_attempts` (or one by one with
`observe_attempt`), token gaps with `observe_inter_token`; the breakers report state
changes with `set_breaker_state`; a stream wraps its lifetime in `track_stream()`.
`start_http` serves `/metrics` from a daemon thread, so a scrape never waits on the event
loop.

The names, labels and meaning of every series are listed in docs/metrics.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIServer

import grpc
from modelrouter_client import pb
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

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
# Upstream tries are shorter than requests (a request may hold several) but as wide.
ATTEMPT_BUCKETS_S: tuple[float, ...] = REQUEST_BUCKETS_S

BREAKER_STATE_VALUES: dict[str, int] = {"closed": 0, "half-open": 1, "open": 2}
"""The value of `modelrouter_circuit_breaker_state` for each breaker state."""

# Empty label values read as a missing label in PromQL; a request that failed before a
# model was chosen is labelled "none" instead, so it can be selected.
_NONE = "none"


def _label(value: str) -> str:
    return value or _NONE


def _code_name(code: str | grpc.StatusCode) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else code.upper()


_CODE_NAMES = {status.value[0]: status.name for status in grpc.StatusCode}


def grpc_code_name(code: int) -> str:
    """The name of a numeric gRPC status code (as carried in `Attempt.grpc_code`)."""
    return _CODE_NAMES.get(code, str(code))


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
        r = self.registry
        ns = namespace
        self._requests = Counter(
            "requests",
            "RPCs handled, by method, answering model and provider, and gRPC status code.",
            ["rpc", "model", "provider", "code"],
            namespace=ns,
            registry=r,
        )
        self._request_duration = Histogram(
            "request_duration_seconds",
            "Wall time of an RPC, from arrival to its last message or error.",
            ["rpc", "model"],
            namespace=ns,
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self._ttft = Histogram(
            "time_to_first_token_seconds",
            "Time from a GenerateStream call's arrival to its first answer token.",
            ["model"],
            namespace=ns,
            buckets=TTFT_BUCKETS_S,
            registry=r,
        )
        self._inter_token = Histogram(
            "inter_token_latency_seconds",
            "Gap between consecutive answer deltas sent on a stream.",
            ["model"],
            namespace=ns,
            buckets=INTER_TOKEN_BUCKETS_S,
            registry=r,
        )
        self._input_tokens = Counter(
            "input_tokens",
            "Prompt tokens billed by providers.",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._output_tokens = Counter(
            "output_tokens",
            "Completion tokens billed by providers (reasoning included).",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._reasoning_tokens = Counter(
            "reasoning_tokens",
            "Of the output tokens, those spent on hidden reasoning or thinking.",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._cost = Counter(
            "cost_usd",
            "Spend at catalog prices, in US dollars, summed over every billed attempt.",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._attempts = Counter(
            "upstream_attempts",
            "Upstream tries and skipped candidates, by outcome and the gRPC code it maps to.",
            ["model", "provider", "outcome", "code"],
            namespace=ns,
            registry=r,
        )
        self._attempt_duration = Histogram(
            "upstream_attempt_duration_seconds",
            "Wall time of one upstream try (skipped candidates are not observed).",
            ["model", "provider"],
            namespace=ns,
            buckets=ATTEMPT_BUCKETS_S,
            registry=r,
        )
        self._retries = Counter(
            "retries",
            "Upstream tries that repeated a failed try on the same model.",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._fallbacks = Counter(
            "fallbacks",
            "Requests answered by a model other than the first candidate (label: answerer).",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._resumed = Counter(
            "resumed_streams",
            "Streams continued on another model after breaking mid-answer (label: finisher).",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._finishes = Counter(
            "finish_reasons",
            "Answers by why they ended (stop, length, refusal, ..., unknown).",
            ["model", "provider", "reason"],
            namespace=ns,
            registry=r,
        )
        self._refusals = Counter(
            "refusals",
            "Answers that were refusals (label: the model that refused and answered).",
            ["model", "provider"],
            namespace=ns,
            registry=r,
        )
        self._local_usage = Counter(
            "usage_counted_locally",
            "Answers whose billed usage includes the router's own token count (a provider "
            "sent no usage for at least one of its attempts), by the least exact method.",
            ["model", "provider", "method"],
            namespace=ns,
            registry=r,
        )
        self._breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.",
            ["provider", "model"],
            namespace=ns,
            registry=r,
        )
        self._breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes per endpoint.",
            ["provider", "model", "from_state", "to_state"],
            namespace=ns,
            registry=r,
        )
        self._inflight_streams = Gauge(
            "inflight_streams",
            "GenerateStream calls open now.",
            namespace=ns,
            registry=r,
        )
        self._pool_timeouts = Counter(
            "upstream_pool_timeouts",
            "Provider calls that found no free pooled connection within pool_timeout_s.",
            ["provider"],
            namespace=ns,
            registry=r,
        )
        self._breaker_states: dict[tuple[str, str], str] = {}
        self._breaker_lock = threading.Lock()
        self._http: WSGIServer | None = None
        self._http_thread: threading.Thread | None = None

    # Recording ---------------------------------------------------------------------------

    def observe_request(
        self,
        *,
        rpc: str,
        code: str | grpc.StatusCode,
        latency_s: float,
        model: str = "",
        provider: str = "",
        ttft_s: float | None = None,
        usage_input: int = 0,
        usage_output: int = 0,
        usage_reasoning: int = 0,
        cost_usd: float = 0.0,
        fallback: bool = False,
        resumed: bool = False,
    ) -> None:
        """Record one finished RPC.

        `rpc` is the method name ("Generate", "GenerateStream", ...); `code` the status it
        ended with (a `grpc.StatusCode` or its name, "OK" on success; "CANCELLED" when the
        caller went away). `model`/`provider` are the ones that answered, empty when none
        did. `ttft_s` is given for streams that sent a first token. Usage and cost are the
        totals over every billed attempt, so tokens a failed attempt burned are counted.
        """
        model_label, provider_label = _label(model), _label(provider)
        self._requests.labels(rpc, model_label, provider_label, _code_name(code)).inc()
        self._request_duration.labels(rpc, model_label).observe(latency_s)
        if ttft_s is not None:
            self._ttft.labels(model_label).observe(ttft_s)
        if usage_input:
            self._input_tokens.labels(model_label, provider_label).inc(usage_input)
        if usage_output:
            self._output_tokens.labels(model_label, provider_label).inc(usage_output)
        if usage_reasoning:
            self._reasoning_tokens.labels(model_label, provider_label).inc(usage_reasoning)
        if cost_usd:
            self._cost.labels(model_label, provider_label).inc(cost_usd)
        if fallback:
            self._fallbacks.labels(model_label, provider_label).inc()
        if resumed:
            self._resumed.labels(model_label, provider_label).inc()

    def observe_finish(
        self, *, model: str, provider: str, reason: str, refusal: bool, usage_method: str
    ) -> None:
        """Record how one answer ended: its finish reason ("stop", "refusal", ...), and
        how its usage was counted ("provider", "exact_local", "estimate")."""
        model_label, provider_label = _label(model), _label(provider)
        self._finishes.labels(model_label, provider_label, reason).inc()
        if refusal:
            self._refusals.labels(model_label, provider_label).inc()
        if usage_method != "provider":
            self._local_usage.labels(model_label, provider_label, usage_method).inc()

    def observe_attempt(
        self,
        *,
        model: str,
        provider: str,
        outcome: str,
        code: str | grpc.StatusCode,
        latency_s: float,
        retry: bool = False,
    ) -> None:
        """Record one upstream try or skipped candidate (one `Attempt` of a reply).

        `outcome` is the attempt outcome's name in lower case ("success", "error",
        "interrupted", "skipped_circuit_open", ...); `code` the gRPC code the failure maps
        to ("OK" on success). `retry` is True when the try repeated a failed try on the same
        model. Skipped candidates (outcome starting with "skipped") add no latency sample.
        """
        model_label, provider_label = _label(model), _label(provider)
        self._attempts.labels(model_label, provider_label, outcome, _code_name(code)).inc()
        if not outcome.startswith("skipped"):
            self._attempt_duration.labels(model_label, provider_label).observe(latency_s)
        if retry:
            self._retries.labels(model_label, provider_label).inc()

    def observe_attempts(self, attempts: Iterable[pb.Attempt]) -> None:
        """Record every `Attempt` of a reply (as sent in the response or stream finish).

        A try counts as a retry when the one before it was a failed try on the same model.
        """
        previous: pb.Attempt | None = None
        for attempt in attempts:
            retry = (
                previous is not None
                and previous.outcome == pb.ATTEMPT_OUTCOME_ERROR
                and (previous.model, previous.provider) == (attempt.model, attempt.provider)
            )
            outcome = pb.AttemptOutcome.Name(attempt.outcome).removeprefix("ATTEMPT_OUTCOME_")
            self.observe_attempt(
                model=attempt.model,
                provider=attempt.provider,
                outcome=outcome.lower(),
                code=grpc_code_name(attempt.grpc_code),
                latency_s=attempt.latency_ms / 1000,
                retry=retry,
            )
            previous = attempt

    def observe_pool_timeout(self, provider: str) -> None:
        """A provider call waited `pool_timeout_s` for a connection and gave up."""
        self._pool_timeouts.labels(_label(provider)).inc()

    def observe_inter_token(self, model: str, seconds: float) -> None:
        """Record the gap between two consecutive answer deltas of a stream."""
        self._inter_token.labels(_label(model)).observe(seconds)

    def set_breaker_state(self, provider: str, model: str, state: str) -> None:
        """Record a circuit breaker's state ("closed", "half-open" or "open").

        The first report for an endpoint sets the gauge without counting a transition (it is
        the initial state); each later report of a different state counts one.
        """
        new = _breaker_state(state)
        key = (provider, model)
        with self._breaker_lock:
            old = self._breaker_states.get(key)
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
        if self._http is not None:
            raise RuntimeError("the metrics endpoint is already running")
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._http_thread = server, thread
        return int(server.server_port)

    def stop_http(self) -> None:
        """Stop the endpoint and close its socket; does nothing if it is not running."""
        server, thread = self._http, self._http_thread
        self._http = self._http_thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
