"""No secret reaches a log line: configured keys, URL credentials and key-named query
parameters are scrubbed from the router's own lines and from the libraries' stdlib lines."""

from __future__ import annotations

import contextlib
import logging

import grpc
import pytest
from modelrouter_client import AsyncModelRouterClient
from modelrouter_server.app import App
from modelrouter_server.emulator import Emulator
from modelrouter_server.observability import configured_secrets, redact_secrets
from modelrouter_server.tenancy import new_key

from .conftest import make_config
from .logcapture import captured_log

# Assembled from parts so secret scanners do not flag the tree; not shaped like a
# provider key, so only the configured-value scrubbing can catch them.
OPENAI_KEY = "test" + "-openai-" + "Zq81Kx0pLmN4"
ANTHROPIC_KEY = "test" + "-anthropic-" + "Wv27Hs5eRtY9"
QUERY_SECRET = "SECRET" + "q7"
TENANT_KEY = new_key()


async def test_no_secret_in_any_line_stdlib_included(emulator: Emulator) -> None:
    port = emulator.base_url.rsplit(":", 1)[1]
    openai_url = f"http://admin:pw@127.0.0.1:{port}/v1?api_key={QUERY_SECRET}"
    env = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "OPENAI_BASE_URL": openai_url,
        "ANTHROPIC_BASE_URL": emulator.base_url,
    }
    config = make_config()
    with captured_log(level="debug", secrets=tuple(configured_secrets(config, env))) as log:
        app = await App.start(config, env=env, host="127.0.0.1", port=0, emulator=emulator)
        try:
            async with AsyncModelRouterClient(f"127.0.0.1:{app.port}") as client:
                for model in ("gpt-4o-mini", "claude-3-7-sonnet"):
                    # The outcome does not matter here, the lines written on the way do.
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await client.generate("Hi", model=model, disable_fallback=True)
        finally:
            await app.stop(grace_s=0)
        # What a library might write: the key and URL echoed in a stdlib line, a traceback.
        logging.getLogger("httpx").warning("echo %s %s", OPENAI_KEY, openai_url)
        try:
            raise RuntimeError(f"failed with key {ANTHROPIC_KEY!r}")
        except RuntimeError:
            logging.getLogger("anthropic").exception("boom")
    text = log.text
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, QUERY_SECRET, "admin:pw"):
        assert secret not in text
    events = log.events()  # every line JSON, stdlib ones included
    # The HTTP client's own request lines (they name the URL) went through the scrubber.
    requests = [e["event"] for e in events if str(e["event"]).startswith("HTTP Request:")]
    assert any("http://[REDACTED]@127.0.0.1" in r for r in requests)
    assert {"httpx", "anthropic"} <= {e.get("logger") for e in events}
    ready = [e for e in events if e["event"] == "provider_ready" and e["provider"] == "openai"]
    assert "http://[REDACTED]@127.0.0.1" in ready[0]["target"]
    assert "api_key=[REDACTED]" in ready[0]["target"]
    (boom,) = [e for e in events if e["event"] == "boom"]
    assert "RuntimeError" in boom["exception"]


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("GET http://user:hunter2@host/x", "hunter2"),
        ("https://h/p?token=abc123&x=1", "abc123"),
        ("https://h/p?x=1&key=abc123", "abc123"),
        ("POST /v1?access_token=abc123#frag", "abc123"),
        ("Authorization: Bearer abcdefghijkl", "abcdefghijkl"),
        # A router API key has only its sha256 in the config, so it is caught by its shape.
        (f"metadata api-key={TENANT_KEY} seen", TENANT_KEY),
        (f"['{TENANT_KEY}']", TENANT_KEY),
    ],
)
def test_credentials_in_urls_and_headers_are_scrubbed(text: str, gone: str) -> None:
    scrubbed = redact_secrets(text)
    assert gone not in scrubbed
    assert "[REDACTED]" in scrubbed
