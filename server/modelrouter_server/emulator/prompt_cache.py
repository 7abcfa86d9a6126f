"""Prompt caching as the providers bill it, so cache usage can be tested offline.

Anthropic caches explicitly: a `cache_control` breakpoint on a block caches the prompt
up to and including it (tools, then system, then messages), for 1024 tokens and more.
A later request reads the longest cached prefix ending at one of its breakpoints or at
one of the 20 blocks before it; the prefix up to its furthest new breakpoint is written.

OpenAI caches automatically: a prompt of 1024 tokens or more whose leading messages were
sent before is served from the cache for the longest such prefix, in steps of 128 tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_CACHEABLE_TOKENS = 1024
OPENAI_CACHE_STEP = 128
_LOOKBACK_BLOCKS = 20
_MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class CacheUse:
    read: int = 0
    written: int = 0


class PromptCache:
    """The prefixes seen, by digest (bounded, oldest forgotten first)."""

    def __init__(self) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def clear(self) -> None:
        self._seen.clear()

    def _has(self, key: bytes) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def _add(self, key: bytes) -> None:
        self._seen[key] = None
        while len(self._seen) > _MAX_ENTRIES:
            self._seen.popitem(last=False)

    def anthropic(self, boundaries: Sequence[tuple[bytes, int, bool]]) -> CacheUse:
        """`boundaries`: (digest of the prompt up to a block, its tokens, whether the
        block is a breakpoint), in prompt order. From each breakpoint the API looks back
        up to 20 blocks for a cached prefix and reads the longest; it writes the prefix
        at each breakpoint past what it read."""
        read = 0
        for i, (_, _, marked) in enumerate(boundaries):
            if not marked:
                continue
            for key, tokens, _ in boundaries[max(0, i - _LOOKBACK_BLOCKS) : i + 1]:
                if tokens >= MIN_CACHEABLE_TOKENS and self._has(key):
                    read = max(read, tokens)
        written = 0
        breakpoints = [(key, tokens) for key, tokens, marked in boundaries if marked]
        for key, tokens in breakpoints:
            if tokens >= MIN_CACHEABLE_TOKENS and tokens > read and not self._has(key):
                self._add(key)
                written = max(written, tokens - read)
        return CacheUse(read, written)

    def openai(self, prefixes: Sequence[tuple[bytes, int]]) -> int:
        """`prefixes`: (digest of the first k messages, their tokens) for every k. The
        cached tokens of this prompt; every prefix is remembered for the next one."""
        cached = 0
        for key, tokens in prefixes:
            if tokens >= MIN_CACHEABLE_TOKENS and self._has(key):
                cached = max(cached, tokens - tokens % OPENAI_CACHE_STEP)
        for key, tokens in prefixes:
            if tokens >= MIN_CACHEABLE_TOKENS:
                self._add(key)
        return cached


def digest(items: Sequence[object]) -> bytes:
    """A digest of JSON-like items, with cache_control markers left out (they mark the
    prefix, they are not part of it)."""
    text = json.dumps([_without_markers(i) for i in items], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _without_markers(item: object) -> object:
    if isinstance(item, Mapping):
        return {k: _without_markers(v) for k, v in item.items() if k != "cache_control"}
    if isinstance(item, list):
        return [_without_markers(v) for v in item]
    return item


def has_marker(item: object) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("cache_control"), Mapping)
