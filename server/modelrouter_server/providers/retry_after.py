"""How long a provider asks us to wait, read from its response headers.

Pure functions over a header mapping, so the retry loop's input can be tested without HTTP.
Precedence follows the SDKs' own retry logic: `retry-after-ms`, then `retry-after` (seconds or
an HTTP date), and only then the rate-limit reset headers, which say when a limit refills:

- Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`, an
  RFC 3339 time, beside `anthropic-ratelimit-*-remaining`.
- OpenAI: `x-ratelimit-reset-{requests,tokens}`, a Go duration such as `1s`, `6m0s`, `12ms`,
  beside `x-ratelimit-remaining-*`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_ANTHROPIC_RESET = re.compile(r"anthropic-ratelimit-(?P<limit>[a-z-]+)-reset")
_OPENAI_RESET = re.compile(r"x-ratelimit-reset-(?P<limit>[a-z-]+)")


def retry_after_from_headers(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> float | None:
    """Seconds to wait before trying again, or None when the headers do not say."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    now = now or datetime.now(UTC)
    if (millis := lowered.get("retry-after-ms")) is not None:
        seconds = parse_seconds(millis)
        if seconds is not None:
            return seconds / 1000
    if (value := lowered.get("retry-after")) is not None:
        seconds = parse_retry_after(value, now=now)
        if seconds is not None:
            return seconds
    return rate_limit_reset_s(lowered, now=now)


def parse_seconds(value: str) -> float | None:
    """A non-negative finite number, or None."""
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def parse_retry_after(value: str, *, now: datetime) -> float | None:
    """`Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    seconds = parse_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _until(when, now)


def parse_duration(value: str) -> float | None:
    """A Go-style duration (`1s`, `6m0s`, `1h2m3.5s`, `12ms`) in seconds, or None."""
    total = 0.0
    position = 0
    for part in _DURATION_PART.finditer(value):
        if part.start() != position:
            return None
        total += float(part.group(1)) * _DURATION_UNIT_S[part.group(2)]
        position = part.end()
    if position == 0 or position != len(value):
        return None
    return total


def parse_rfc3339(value: str, *, now: datetime) -> float | None:
    """Seconds from `now` until an RFC 3339 time (never negative), or None."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _until(when, now)


def rate_limit_reset_s(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """When the limits that may have refused us refill, from lower-cased reset headers.

    A limit that still has capacity (`remaining` above zero) did not cause a 429, so only
    limits that are exhausted, or whose remaining count is not reported, are waited for;
    when several are, the request can pass only once the last of them refills.
    """
    waits = [
        *_resets(
            headers,
            _ANTHROPIC_RESET,
            "anthropic-ratelimit-{}-remaining",
            partial(parse_rfc3339, now=now),
        ),
        *_resets(headers, _OPENAI_RESET, "x-ratelimit-remaining-{}", parse_duration),
    ]
    return max(waits) if waits else None


def _resets(
    headers: Mapping[str, str],
    pattern: re.Pattern[str],
    remaining_name: str,
    parse: Callable[[str], float | None],
) -> list[float]:
    waits: list[float] = []
    for name, value in headers.items():
        match = pattern.fullmatch(name)
        if match is None:
            continue
        remaining = headers.get(remaining_name.format(match.group("limit")))
        if remaining is not None and remaining.strip() not in ("0", ""):
            continue
        wait = parse(value)
        if wait is not None:
            waits.append(wait)
    return waits


def _until(when: datetime, now: datetime) -> float:
    return max(0.0, (when - now).total_seconds())
