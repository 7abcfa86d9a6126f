"""Telling an OpenAI stream that ended with `data: [DONE]` from one whose body just stopped.

The openai SDK stops iterating at `[DONE]` and also, without a word, when the body ends
early, so its iterator cannot tell a complete answer from a cut one. This module wraps the
SDK's SSE decoder (through the client's `_make_sse_decoder` hook, the one place the SDK
builds it) to note whether the marker passed by; `saw_done_marker` reads that note off a
finished stream. Both touch SDK internals, kept here so an SDK upgrade has one place to check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import openai
from openai._streaming import ServerSentEvent, SSEBytesDecoder, SSEDecoder

_DONE = "[DONE]"
_Item = TypeVar("_Item")


class DoneMarkerWatch:
    """An SSE decoder that passes every event through and notes the `[DONE]` marker."""

    def __init__(self, inner: SSEDecoder | SSEBytesDecoder) -> None:
        self._inner = inner
        self.saw_done = False

    def iter_bytes(self, iterator: Iterator[bytes]) -> Iterator[ServerSentEvent]:
        for event in self._inner.iter_bytes(iterator):
            self._note(event)
            yield event

    async def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
        async for event in self._inner.aiter_bytes(iterator):
            self._note(event)
            yield event

    def _note(self, event: ServerSentEvent) -> None:
        # The same test the SDK applies before it stops iterating.
        if event.data.startswith(_DONE):
            self.saw_done = True


class DoneAwareAsyncOpenAI(openai.AsyncOpenAI):
    """`AsyncOpenAI` whose streams can report whether they ended with `[DONE]`."""

    def _make_sse_decoder(self) -> SSEDecoder | SSEBytesDecoder:
        return DoneMarkerWatch(super()._make_sse_decoder())


def saw_done_marker(stream: openai.AsyncStream[_Item]) -> bool:
    """Whether `stream` (made by a `DoneAwareAsyncOpenAI`) has read `data: [DONE]`."""
    decoder = stream._decoder
    return isinstance(decoder, DoneMarkerWatch) and decoder.saw_done
