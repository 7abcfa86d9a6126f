"""Removing secrets from text that is about to be logged.

No code logs a key on purpose, but an SDK error string, a repr, a URL in an httpx debug
line or a start-up line naming a base URL could carry one. A `Redactor` removes:

- the configured secret values themselves (provider keys from the environment, URL
  passwords and key-like query values from configured base URLs), in every form they can
  take in a log line: as is, URL-encoded, JSON- or repr-escaped;
- user:password in any URL (`http://admin:pw@host` -> `http://[REDACTED]@host`);
- the value of any key-named query parameter (`?api_key=`, `key=`, `token=`, ...);
- anything shaped like a provider key, a router API key or a bearer token.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from modelrouter_server.config.schema import RouterConfig

REDACTED = "[REDACTED]"

_MIN_SECRET_LEN = 6
"""Shorter configured values are too likely to occur in ordinary text; the URL and
parameter patterns still catch them where they appear as credentials."""

_KEY_NAMES = (
    r"api[_-]?key|apikey|key|access[_-]?token|refresh[_-]?token|id[_-]?token|token"
    r"|secret|client[_-]?secret|password|passwd|pwd|auth|authorization|signature|sig"
    r"|x-api-key"
)
_KEY_NAME = re.compile(rf"^(?:{_KEY_NAMES})$", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@'\"]+:[^/\s@'\"]*@")
_QUERY_SECRET = re.compile(rf"(?i)([?&;](?:{_KEY_NAMES})=)[^&#\s'\"]+")
_SHAPED = re.compile(
    # `mr_` + 43: a router API key (`tenancy.keys.new_key`); only its digest is configured.
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{16,}|(?<![A-Za-z0-9_])mr_[A-Za-z0-9_\-]{40,}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.=]{8,}|(?i:x-api-key)[\"':= ]+[A-Za-z0-9_\-\.]{8,})"
)


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """A field or parameter name whose value is a credential (`api_key`, `token`...).

    Cached: every log line asks this of each of its field names, a small fixed set."""
    return bool(_KEY_NAME.match(name))


def _forms(secret: str) -> set[str]:
    """The ways a secret can be written into a log line."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


class Redactor:
    """Scrubs text of credentials; `secrets` are exact values to remove wherever they
    appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if len(s.strip()) >= _MIN_SECRET_LEN for form in _forms(s)}
        # Longest first, so a secret is removed whole before a shorter form inside it.
        self._exact = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )

    def __call__(self, text: str) -> str:
        # Each pattern runs only where the text holds what it cannot match without (a
        # substring test costs far less than a regex scan): most lines hold none of them.
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        if "://" in text:
            text = _URL_CREDENTIALS.sub(f"{REDACTED}@", text)
        if "=" in text and ("?" in text or "&" in text or ";" in text):
            text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
        if "sk-" in text or "mr_" in text or _may_hold_header_secret(text):
            text = _SHAPED.sub(REDACTED, text)
        return text


def _may_hold_header_secret(text: str) -> bool:
    lowered = text.lower()
    return "bearer" in lowered or "x-api-key" in lowered


def redact_secrets(text: str) -> str:
    """`text` without credentials in URLs, key-named parameters or key-shaped strings."""
    return _DEFAULT(text)


_DEFAULT = Redactor()


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password] if password else []
    found += [value for name, value in parse_qsl(parts.query) if is_secret_name(name)]
    return found


def configured_secrets(config: RouterConfig, env: Mapping[str, str]) -> list[str]:
    """Every secret value the router is configured with: each provider's key (and the
    SDKs' default key variables), and passwords or keys inside configured URLs (base
    URLs, the Redis store's and the ledger's)."""
    names = {p.api_key_env for p in config.providers.values() if p.api_key_env}
    names |= {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"}
    found = [env[name] for name in sorted(names) if env.get(name)]
    urls = [p.base_url for p in config.providers.values() if p.base_url]
    urls += [config.context.redis_url, config.ledger.redis_url]
    urls += [env[v] for v in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL") if env.get(v)]
    for url in urls:
        found += _url_secrets(url)
    return found
