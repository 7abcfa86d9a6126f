"""One endpoint of an official SDK client, sent the providers' request bodies as they are.

The SDKs' resource methods do work on every call that the router does not need. openai's
`chat.completions.create` walks the body against the method's TypedDict annotations
(`async_maybe_transform`: about 350 µs of CPU, 18% of a unary call through the router),
and would return the providers' bodies as they are: plain dicts and lists of JSON values,
with no aliased key and no `format`-annotated field (images already go as base64 text).
anthropic's `messages.create` starts an OpenTelemetry span, dropped again at once where
no tracer provider is set up, as in the router.

The client's lower-level `post` (the SDKs' "undocumented endpoints" API) sends a body
unchanged and keeps everything else the client does for a request: base URL, auth and
default headers, timeouts, the retry loop (turned off), and the SDK's exceptions
(`APIStatusError` subclasses on 4xx/5xx, with the error body read; `APIConnectionError`,
`APITimeoutError`). With `cast_to=httpx2.Response` it returns the HTTP response itself,
which the providers parse (see `providers.sse`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2


class JsonPoster(Protocol):
    """An SDK client's `post`: `openai.AsyncOpenAI`'s and `anthropic.AsyncAnthropic`'s."""

    # `options` is each SDK's own `RequestOptions` TypedDict, which no one type matches.
    async def post(
        self, path: str, *, cast_to: type[httpx2.Response], body: object, options: Any
    ) -> httpx2.Response: ...


@dataclass(frozen=True, slots=True)
class SdkEndpoint:
    """`path` of `client`, called with what the SDK's own method for it would send."""

    client: JsonPoster
    path: str
    raw_response_header: str
    """The SDK's `RAW_RESPONSE_HEADER`. Set to "stream", it has the client hand back the
    response before reading its body, as `with_streaming_response` does: `post` has no
    other way to ask for that once `cast_to` is the response itself."""
    options: Mapping[str, object] = field(default_factory=dict)
    """What the SDK's method adds to every call of this endpoint (openai's
    `security={"bearer_auth": True}`, without which the client sends no key)."""

    async def call(
        self, body: Mapping[str, object], *, timeouts: httpx2.Timeout
    ) -> httpx2.Response:
        """The response to `body`, read whole; an error status raises the SDK's error."""
        return await self.client.post(
            self.path,
            cast_to=httpx2.Response,
            body=body,
            options={**self.options, "timeout": timeouts},
        )

    async def open_stream(
        self, body: Mapping[str, object], *, timeouts: httpx2.Timeout
    ) -> httpx2.Response:
        """The streamed response to `body`, its body not read yet: the caller reads and
        closes it. Both APIs stream when the body says `"stream": true`. An error status
        raises the SDK's error, whose body the client has read first."""
        return await self.client.post(
            self.path,
            cast_to=httpx2.Response,
            body={**body, "stream": True},
            options={
                **self.options,
                "headers": {self.raw_response_header: "stream"},
                "timeout": timeouts,
            },
        )
