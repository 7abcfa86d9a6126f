"""The one small interface every provider implements.

A provider turns a `ProviderRequest` into a `Completion` or a stream of `StreamEvent`s
through its official SDK, and maps every SDK and transport failure to the domain
hierarchy in `modelrouter_server.errors` (by status code and the provider's structured
error type, never by message text). Nothing above this layer sees an SDK exception.

Providers do not retry: the SDK clients are built with `max_retries=0`, because the one
retry loop lives in `resilience.retry`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol, runtime_checkable

from modelrouter_server.domain import Completion, Message, ProviderRequest, StreamEvent


@runtime_checkable
class Provider(Protocol):
    @property
    def name(self) -> str:
        """The provider's name in config (e.g. "anthropic", "local")."""
        ...

    @property
    def emulated(self) -> bool:
        """True when this provider talks to the built-in emulator."""
        ...

    async def complete(self, request: ProviderRequest) -> Completion:
        """One complete reply; raises `ProviderError` subclasses."""
        ...

    def stream(self, request: ProviderRequest) -> AsyncGenerator[StreamEvent, None]:
        """Chunks then exactly one `StreamEnd`.

        Raises `StreamInterrupted` when the stream breaks after it started, including a
        clean end of the body without the provider's terminal event. Closing the iterator
        (`aclose`, or cancelling the consuming task) closes the upstream HTTP request.
        """
        ...

    async def count_tokens(self, model: str, messages: Sequence[Message]) -> int | None:
        """The provider's own count of the input tokens, or None when it has no
        counting endpoint. Raises `ProviderError` when the endpoint fails."""
        ...

    async def aclose(self) -> None:
        """Release the SDK client's connection pool."""
        ...
