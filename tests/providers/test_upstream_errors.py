"""The status table and redaction shared by the providers (no HTTP)."""

from __future__ import annotations

import pytest
from modelrouter_server.errors import (
    ContextWindowExceeded,
    InterruptionKind,
    InvalidProviderRequest,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from modelrouter_server.providers.upstream_errors import HttpFailure, UpstreamErrors, redact

# A fake key in the real shape, assembled so secret scanners do not flag the tree.
SECRET = "sk-ant-" + "api03-very-secret-key-" + "0123456789"
ERRORS = UpstreamErrors(provider="anthropic", model="m", secret=SECRET)


def failure(status: int, message: str = "nope", **headers: str) -> HttpFailure:
    return HttpFailure(
        status_code=status,
        error_type="some_error",
        error_code=None,
        message=message,
        request_id="req_1",
        headers={name.replace("_", "-"): value for name, value in headers.items()},
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (408, ProviderTimeout),
        (409, InvalidProviderRequest),
        (418, InvalidProviderRequest),
        (502, ServerError),
        (504, ServerError),
        (302, ServerError),
    ],
)
def test_statuses_the_sdks_rarely_see(status: int, error_class: type[ProviderError]) -> None:
    assert type(ERRORS.from_status(failure(status))) is error_class


def test_provider_specific_facts_win_over_the_status() -> None:
    assert type(ERRORS.from_status(failure(400), context_window=True)) is ContextWindowExceeded
    assert type(ERRORS.from_status(failure(500), overloaded=True)) is Overloaded
    quota = ERRORS.from_status(failure(402), quota_exhausted=True)
    assert isinstance(quota, RateLimited)
    assert quota.quota_exhausted


def test_retry_after_is_read_from_the_headers() -> None:
    error = ERRORS.from_status(failure(429, retry_after="7"))

    assert error.retry_after_s == 7.0
    assert error.upstream_request_id == "req_1"


def test_message_names_provider_model_status_and_type() -> None:
    error = ERRORS.from_status(failure(400, "max_tokens: too big"))

    assert error.message == "anthropic (m): 400 some_error: max_tokens: too big"


def test_an_echoed_key_is_redacted() -> None:
    error = ERRORS.from_status(failure(401, f"invalid x-api-key {SECRET}"))

    assert SECRET not in error.message
    assert "[redacted]" in error.message


def test_interruptions_are_redacted_too() -> None:
    error = ERRORS.interrupted(InterruptionKind.DROPPED, f"while sending {SECRET}")

    assert SECRET not in error.message
    assert error.kind is InterruptionKind.DROPPED


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def.ghi",
        "Incorrect API key provided: sk-proj-abcdefghijklmnop",
    ],
)
def test_anything_shaped_like_a_credential_is_redacted(text: str) -> None:
    redacted = redact(text, secret="")

    assert "abc.def.ghi" not in redacted
    assert "abcdefghijklmnop" not in redacted


def test_short_secrets_are_not_redacted_everywhere() -> None:
    # A placeholder key like "x" must not blank out every "x" of a message.
    assert redact("max_tokens", secret="x") == "max_tokens"
