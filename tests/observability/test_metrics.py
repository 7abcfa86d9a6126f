"""The metrics endpoint, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from modelrouter_server.attempts import AttemptRecord, Outcome
from modelrouter_server.domain import Usage
from modelrouter_server.errors import ServerError
from modelrouter_server.observability.metrics import Metrics
from modelrouter_server.observability.summary import RequestSummary
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics()
    yield m
    m.stop_http()


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The value of the one sample with this name and exactly these labels (le aside)."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} matched {len(found)} samples"
    return found[0] if found else None


def test_endpoint_binds_port_zero_and_stops(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    metrics.observe(RequestSummary("Generate", grpc.StatusCode.OK, 0.01))
    assert port > 0
    # The bound port serves this instance's series, not just any HTTP answer.
    labels = {"rpc": "Generate", "model": "none", "provider": "none", "code": "OK"}
    assert value(scrape(port), "modelrouter_requests_total", **labels) == 1
    metrics.stop_http()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_two_instances_do_not_share_series() -> None:
    a, b = Metrics(), Metrics()
    a.observe(RequestSummary("Generate", grpc.StatusCode.OK, 0.1, model="m", provider="p"))
    assert b"modelrouter_requests_total{" in a.exposition()
    assert b"modelrouter_requests_total{" not in b.exposition()


def test_successful_stream_records_every_series(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    metrics.observe(
        RequestSummary(
            "GenerateStream",
            grpc.StatusCode.OK,
            1.2,
            model="gpt-4o-mini",
            provider="openai",
            ttft_s=0.08,
            usage=Usage(input_tokens=100, output_tokens=40, reasoning_tokens=10),
            cost_usd=0.0025,
            fallback=True,
            resumed=True,
        )
    )
    metrics.observe(
        RequestSummary(
            "GenerateStream", grpc.StatusCode.OK, 0.3, model="gpt-4o-mini", provider="openai",
            usage=Usage(input_tokens=5, output_tokens=2), cost_usd=0.0005,
        )
    )  # fmt: skip
    s = scrape(port)
    mp = {"model": "gpt-4o-mini", "provider": "openai"}
    assert value(s, "modelrouter_requests_total", rpc="GenerateStream", code="OK", **mp) == 2
    assert value(s, "modelrouter_input_tokens_total", **mp) == 105
    assert value(s, "modelrouter_output_tokens_total", **mp) == 42
    assert value(s, "modelrouter_reasoning_tokens_total", **mp) == 10
    assert value(s, "modelrouter_cost_usd_total", **mp) == pytest.approx(0.003)
    assert value(s, "modelrouter_fallbacks_total", **mp) == 1
    assert value(s, "modelrouter_resumed_streams_total", **mp) == 1

    dur = {"rpc": "GenerateStream", "model": "gpt-4o-mini"}
    assert value(s, "modelrouter_request_duration_seconds_count", **dur) == 2
    assert value(s, "modelrouter_request_duration_seconds_sum", **dur) == pytest.approx(1.5)
    assert value(s, "modelrouter_request_duration_seconds_bucket", le="0.5", **dur) == 1
    assert value(s, "modelrouter_request_duration_seconds_bucket", le="1.5", **dur) == 2
    assert value(s, "modelrouter_request_duration_seconds_bucket", le="+Inf", **dur) == 2
    # Only the call that reported a first token is in the TTFT histogram.
    ttft = {"model": "gpt-4o-mini"}
    assert value(s, "modelrouter_time_to_first_token_seconds_count", **ttft) == 1
    assert value(s, "modelrouter_time_to_first_token_seconds_bucket", le="0.05", **ttft) == 0
    assert value(s, "modelrouter_time_to_first_token_seconds_bucket", le="0.1", **ttft) == 1


def test_failed_request_without_a_model_is_labelled_none(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    metrics.observe(RequestSummary("Generate", grpc.StatusCode.INVALID_ARGUMENT, 0.001))
    s = scrape(port)
    labels = {"rpc": "Generate", "model": "none", "provider": "none", "code": "INVALID_ARGUMENT"}
    assert value(s, "modelrouter_requests_total", **labels) == 1
    # No usage: no token series created for it.
    assert value(s, "modelrouter_input_tokens_total", model="none", provider="none") is None


def test_attempts_retries_and_skips(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    model, provider = "claude-3-7-sonnet-20250219", "anthropic"
    mp = {"model": model, "provider": provider}
    attempts = (
        AttemptRecord(model, provider, Outcome.ERROR, error_class=ServerError, latency_ms=200),
        AttemptRecord(model, provider, Outcome.SUCCESS, latency_ms=900),
        AttemptRecord("gpt-4o-mini", "openai", Outcome.SKIPPED_CIRCUIT_OPEN),
    )
    metrics.observe(RequestSummary("Generate", grpc.StatusCode.OK, 1.2, attempts=attempts))
    s = scrape(port)
    name = "modelrouter_upstream_attempts_total"
    assert value(s, name, outcome="error", code="UNAVAILABLE", **mp) == 1
    assert value(s, name, outcome="success", code="OK", **mp) == 1
    assert value(s, "modelrouter_retries_total", **mp) == 1
    skipped = {"model": "gpt-4o-mini", "provider": "openai"}
    assert value(s, name, outcome="skipped_circuit_open", code="UNAVAILABLE", **skipped) == 1
    # A skipped candidate made no call, so it has no duration sample.
    assert value(s, "modelrouter_upstream_attempt_duration_seconds_count", **skipped) is None
    assert value(s, "modelrouter_upstream_attempt_duration_seconds_count", **mp) == 2


def test_inter_token_latency(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    for gap in (0.004, 0.02, 0.02, 3.0):
        metrics.observe_inter_token("o3-mini-2025-01-31", gap)
    s = scrape(port)
    labels = {"model": "o3-mini-2025-01-31"}
    name = "modelrouter_inter_token_latency_seconds"
    assert value(s, f"{name}_count", **labels) == 4
    assert value(s, f"{name}_bucket", le="0.005", **labels) == 1
    assert value(s, f"{name}_bucket", le="0.02", **labels) == 3
    assert value(s, f"{name}_bucket", le="2.5", **labels) == 3
    assert value(s, f"{name}_bucket", le="5.0", **labels) == 4


def test_breaker_state_and_transitions(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    ep = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}
    metrics.set_breaker_state("openai", "gpt-4o-mini-2024-07-18", "closed")
    s = scrape(port)
    assert value(s, "modelrouter_circuit_breaker_state", **ep) == 0
    # The initial state is not a transition.
    assert not [x for x in s if x.name == "modelrouter_circuit_breaker_transitions_total"]

    metrics.set_breaker_state("openai", "gpt-4o-mini-2024-07-18", "open")
    metrics.set_breaker_state("openai", "gpt-4o-mini-2024-07-18", "open")  # no change
    metrics.set_breaker_state("openai", "gpt-4o-mini-2024-07-18", "HALF_OPEN")
    s = scrape(port)
    assert value(s, "modelrouter_circuit_breaker_state", **ep) == 1
    transitions = "modelrouter_circuit_breaker_transitions_total"
    assert value(s, transitions, from_state="closed", to_state="open", **ep) == 1
    assert value(s, transitions, from_state="open", to_state="half-open", **ep) == 1

    metrics.set_breaker_state("openai", "gpt-4o-mini-2024-07-18", "open")
    assert value(scrape(port), "modelrouter_circuit_breaker_state", **ep) == 2


def test_a_first_report_with_its_previous_state_is_a_transition(metrics: Metrics) -> None:
    metrics.set_breaker_state("openai", "gpt-4o-mini", "open", previous="closed")
    transitions = "modelrouter_circuit_breaker_transitions_total"
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    labels |= {"from_state": "closed", "to_state": "open"}
    assert metrics.registry.get_sample_value(transitions, labels) == 1


def test_unknown_breaker_state_is_rejected(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="unknown circuit breaker state"):
        metrics.set_breaker_state("openai", "gpt-4o-mini", "ajar")


def test_inflight_streams_gauge_follows_the_block(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    with metrics.track_stream(), metrics.track_stream():
        assert value(scrape(port), "modelrouter_inflight_streams") == 2
    with pytest.raises(RuntimeError), metrics.track_stream():
        raise RuntimeError("the stream failed")
    assert value(scrape(port), "modelrouter_inflight_streams") == 0


def test_second_start_is_refused(metrics: Metrics) -> None:
    metrics.start_http("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="already running"):
        metrics.start_http("127.0.0.1", 0)


def test_attempts_of_a_request_count_retries(metrics: Metrics) -> None:
    port = metrics.start_http("127.0.0.1", 0)
    claude, gpt = "claude-3-7-sonnet-20250219", "gpt-4o-mini-2024-07-18"
    failed = AttemptRecord(
        claude, "anthropic", Outcome.ERROR, error_class=ServerError, latency_ms=100
    )
    answered = AttemptRecord(gpt, "openai", Outcome.SUCCESS, latency_ms=900)
    metrics.observe(
        RequestSummary("Generate", grpc.StatusCode.OK, 1.2, attempts=(failed, failed, answered))
    )
    s = scrape(port)
    attempts = "modelrouter_upstream_attempts_total"
    c = {"model": claude, "provider": "anthropic"}
    g = {"model": gpt, "provider": "openai"}
    assert value(s, attempts, outcome="error", code="UNAVAILABLE", **c) == 2
    assert value(s, attempts, outcome="success", code="OK", **g) == 1
    # The second claude try repeated a failed one; the switch to gpt is a fallback, not a retry.
    assert value(s, "modelrouter_retries_total", **c) == 1
    assert value(s, "modelrouter_retries_total", **g) is None
    duration = "modelrouter_upstream_attempt_duration_seconds_sum"
    assert value(s, duration, **g) == pytest.approx(0.9)
