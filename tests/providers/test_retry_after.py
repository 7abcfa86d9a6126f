"""Reading how long to wait from response headers (pure functions, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from modelrouter_server.providers.retry_after import (
    parse_duration,
    parse_retry_after,
    parse_rfc3339,
    retry_after_from_headers,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def wait(headers: dict[str, str]) -> float | None:
    return retry_after_from_headers(headers, now=NOW)


def test_no_headers_say_nothing() -> None:
    assert wait({}) is None


def test_retry_after_ms_comes_first() -> None:
    assert wait({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_in_seconds() -> None:
    assert wait({"retry-after": "3"}) == 3.0
    assert wait({"Retry-After": "0.25"}) == 0.25


def test_retry_after_as_an_http_date() -> None:
    assert wait({"retry-after": "Sat, 01 Mar 2025 12:00:30 GMT"}) == 30.0


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now=NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "-5", "nan", "inf", ""])
def test_unreadable_retry_after_falls_through(value: str) -> None:
    assert wait({"retry-after": value}) is None
    assert wait({"retry-after-ms": value, "retry-after": "2"}) == 2.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        ("1h2m3.5s", 3723.5),
        ("0.5s", 0.5),
        ("250us", 0.00025),
        ("7ns", 7e-9),
    ],
)
def test_go_durations(value: str, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "s", "1x", "1s2", " 1s", "1s "])
def test_malformed_go_durations(value: str) -> None:
    assert parse_duration(value) is None


def test_rfc3339_times() -> None:
    assert parse_rfc3339("2025-03-01T12:00:07Z", now=NOW) == 7.0
    assert parse_rfc3339("2025-03-01T13:00:07+01:00", now=NOW) == 7.0
    assert parse_rfc3339("2025-03-01T11:59:00Z", now=NOW) == 0.0
    assert parse_rfc3339("tomorrow", now=NOW) is None


def test_anthropic_reset_of_an_exhausted_limit() -> None:
    headers = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2025-03-01T12:00:20Z",
        "anthropic-ratelimit-tokens-remaining": "5000",
        "anthropic-ratelimit-tokens-reset": "2025-03-01T12:00:50Z",
    }

    # The tokens limit still has room, so its later reset is not what refused us.
    assert wait(headers) == 20.0


def test_every_exhausted_limit_must_refill() -> None:
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2025-03-01T12:00:20Z",
        "anthropic-ratelimit-output-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": "2025-03-01T12:00:45Z",
    }

    assert wait(headers) == 45.0


def test_reset_without_a_remaining_count_is_waited_for() -> None:
    assert wait({"x-ratelimit-reset-tokens": "6m0s"}) == 360.0


def test_openai_reset_durations() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-remaining-tokens": "150000",
        "x-ratelimit-reset-tokens": "6m0s",
    }

    assert wait(headers) == pytest.approx(0.012)


def test_limits_with_room_say_nothing() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
    }

    assert wait(headers) is None


def test_retry_after_beats_reset_headers() -> None:
    headers = {
        "retry-after": "4",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }

    assert wait(headers) == 4.0
