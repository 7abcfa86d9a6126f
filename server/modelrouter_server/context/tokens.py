"""Token counting: one interface over tiktoken, Anthropic's count_tokens and a local estimate.

- OpenAI models (`o200k_base`, `cl100k_base`): exact, offline, with the vocabularies shipped in
  the package, plus the chat format's framing from `ModelConfig` (`message_overhead_tokens` per
  message, `reply_priming_tokens` once).
- Claude (`anthropic`): the provider's count_tokens endpoint when it answers (cached by
  content), else `ClaudeEstimate` with its safety margin. `TokenCount.method` says which.

Counting is incremental: each message's tokens are cached by (vocabulary, role, content hash),
so a long conversation costs one tokenization per new message, not one per request, and the
several candidates of one request that share a vocabulary share the counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from modelrouter_server.config.schema import ModelConfig, RouterConfig, Tokenizer
from modelrouter_server.context._digest import content_digest, message_text, messages_digest
from modelrouter_server.context._lru import LruCache
from modelrouter_server.context.bounded_encode import count_tokens
from modelrouter_server.context.claude_estimate import ClaudeEstimate, base_tokens
from modelrouter_server.context.vocabulary import shipped_encoding
from modelrouter_server.domain import CountMethod, ImagePart, Message
from modelrouter_server.errors import ModelNotFound, ProviderError
from modelrouter_server.images import (
    ImageError,
    anthropic_image_tokens,
    image_size,
    openai_image_tokens,
)
from modelrouter_server.providers.base import Provider
from modelrouter_server.quoting import quote

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TokenCount:
    """The input tokens a list of messages uses on one model, and how that was found."""

    tokens: int
    method: CountMethod


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of the per-message token cache."""

    entries: int
    hits: int
    misses: int


_MessageKey = tuple[str, str, bytes]
"""(counting scheme: a vocabulary name or "claude-estimate", role, content digest)."""

_CLAUDE_SCHEME = "claude-estimate"

_PromptKey = tuple[str, bytes]
"""(model id, digest of the whole message list)."""


class TokenCounter:
    """Counts the input tokens of messages for any configured model.

    `count` is the complete answer (it may ask the provider); `count_local` and
    `message_tokens` never leave the process, for the router's window filter and for fitting.
    """

    def __init__(
        self,
        config: RouterConfig,
        providers: Mapping[str, Provider],
        *,
        cache_entries: int = 65_536,
        provider_cache_entries: int = 4_096,
        provider_timeout_s: float = 10.0,
        provider_cooldown_s: float = 30.0,
        offload_chars: int = 16_384,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._providers = providers
        self._messages: LruCache[_MessageKey, int] = LruCache(cache_entries)
        self._provider_counts: LruCache[_PromptKey, int] = LruCache(provider_cache_entries)
        self._provider_timeout_s = provider_timeout_s
        # After a failed count_tokens call the provider is not asked again for a while, so an
        # unreachable endpoint costs one connect timeout, not one per request.
        self._provider_cooldown_s = provider_cooldown_s
        self._provider_down_until: dict[str, float] = {}
        # Tokenizing (and hashing) this many characters or more runs in a worker thread, so
        # a huge message does not stall the event loop (16k characters: about 2 ms).
        self._offload_chars = offload_chars
        # The digests of the last few large texts, by object identity (the entry holds the
        # text, so its id cannot be reused while it is there): counting the same large
        # message again on the event loop does not hash megabytes there. Few entries:
        # each pins its text.
        self._large_digests: LruCache[int, tuple[str, bytes]] = LruCache(4)
        self._clock = clock
        self.claude_estimate = ClaudeEstimate(config.context.anthropic_estimate_margin)

    def load_vocabularies(self) -> None:
        """Load every vocabulary the configured models count with (about a second each),
        so the first request does not pay for it. Blocking: run it off the event loop."""
        needed = {m.tokenizer for m in self._config.models.values()}
        if Tokenizer.ANTHROPIC in needed:
            needed |= {Tokenizer.CL100K_BASE}  # the Claude estimate's cross-check
        for tokenizer in needed - {Tokenizer.ANTHROPIC}:
            shipped_encoding(tokenizer)

    # -- models ---------------------------------------------------------------------------

    def resolve(self, model: str) -> str:
        """The concrete model id for an id or alias; `ModelNotFound` when unknown."""
        model_id = self._config.resolve(model)
        if model_id is None:
            raise ModelNotFound("model", f"no model or alias {quote(model)}")
        return model_id

    def _model(self, model: str) -> tuple[str, ModelConfig]:
        model_id = self.resolve(model)
        return model_id, self._config.models[model_id]

    @staticmethod
    def _scheme(model: ModelConfig) -> str:
        if model.tokenizer is Tokenizer.ANTHROPIC:
            return _CLAUDE_SCHEME
        return str(model.tokenizer.value)

    # -- local counting ---------------------------------------------------------------------

    def _digest(self, content: str) -> bytes:
        if len(content) < self._offload_chars:
            return content_digest(content)
        entry = self._large_digests.get(id(content))
        if entry is not None and entry[0] is content:
            return entry[1]
        digest = content_digest(content)
        self._large_digests.put(id(content), (content, digest))
        return digest

    def _key(self, scheme: str, message: Message) -> _MessageKey:
        return (scheme, message.role.value, self._digest(message_text(message)))

    def _base_tokens(self, scheme: str, message: Message) -> int:
        """A message's tokens before framing (Claude: the uncalibrated estimate), cached."""
        key = self._key(scheme, message)
        cached = self._messages.get(key)
        if cached is not None:
            return cached
        if scheme == _CLAUDE_SCHEME:
            tokens = base_tokens(message_text(message))
        else:
            encoding = shipped_encoding(Tokenizer(scheme))
            # Ordinary text: special-token text in a message is ordinary text to the API.
            tokens = count_tokens(encoding, message.role.value) + count_tokens(
                encoding, message_text(message)
            )
        self._messages.put(key, tokens)
        return tokens

    def message_tokens(self, model: str, messages: Sequence[Message]) -> tuple[int, ...]:
        """Each message's tokens on `model`, framing included (Claude: estimate with margin).

        `count_local` is their sum plus `reply_priming_tokens`.
        """
        _, config = self._model(model)
        scheme = self._scheme(config)
        overhead = config.message_overhead_tokens
        if scheme == _CLAUDE_SCHEME:
            scale = self.claude_estimate.scale
            return tuple(
                scale(self._base_tokens(scheme, m)) + overhead + _image_tokens(config, m)
                for m in messages
            )
        return tuple(
            self._base_tokens(scheme, m) + overhead + _image_tokens(config, m) for m in messages
        )

    def reply_priming_tokens(self, model: str) -> int:
        """The tokens a request adds once, whatever its messages."""
        return self._model(model)[1].reply_priming_tokens

    def count_local(self, model: str, messages: Sequence[Message]) -> int:
        """Input tokens without leaving the process: exact for tiktoken models, the estimate
        with its margin for Claude."""
        return sum(self.message_tokens(model, messages)) + self.reply_priming_tokens(model)

    def local_method(self, model: str) -> CountMethod:
        """How `count_local` and `count_output_local` count on `model`."""
        if self._model(model)[1].tokenizer is Tokenizer.ANTHROPIC:
            return CountMethod.ESTIMATE
        return CountMethod.EXACT_LOCAL

    def count_output_local(self, model: str, text: str) -> int:
        """The tokens of generated `text` on `model`, without framing: exact for tiktoken
        models, the calibrated estimate for Claude. Not cached: each answer is new."""
        _, config = self._model(model)
        if not text:
            return 0
        if config.tokenizer is Tokenizer.ANTHROPIC:
            return self.claude_estimate.scale(base_tokens(text))
        return count_tokens(shipped_encoding(config.tokenizer), text)

    async def count_output(self, model: str, text: str) -> int:
        """`count_output_local`, in a worker thread for a long text so the event loop
        does not wait on it (about 1 ms per 8,000 Claude tokens on this machine)."""
        if len(text) < self._offload_chars:
            return self.count_output_local(model, text)
        return await asyncio.to_thread(self.count_output_local, model, text)

    async def warm(self, model: str, messages: Iterable[Message]) -> None:
        """Count the uncached messages ahead of a synchronous count on `model`, in a worker
        thread when they are large (hashing included)."""
        _, config = self._model(model)
        await self._warm({self._scheme(config)}, list(messages))

    async def warm_all(self, messages: Iterable[Message]) -> None:
        """`warm` for every configured model at once: before routing, which counts the
        prompt on each candidate synchronously."""
        schemes = {self._scheme(model) for model in self._config.models.values()}
        await self._warm(schemes, list(messages))

    async def _warm(self, schemes: set[str], messages: list[Message]) -> None:
        def fill() -> None:
            for scheme in sorted(schemes):
                for message in messages:
                    self._base_tokens(scheme, message)

        if sum(len(m.content) for m in messages) < self._offload_chars:
            fill()
        else:
            await asyncio.to_thread(fill)

    async def messages_digest(self, messages: Sequence[Message]) -> bytes:
        """`messages_digest`, hashed in a worker thread when the messages are large."""
        if sum(len(m.content) for m in messages) < self._offload_chars:
            return messages_digest(messages)
        return await asyncio.to_thread(messages_digest, messages)

    # -- the full count ---------------------------------------------------------------------

    async def count(self, model: str, messages: Sequence[Message]) -> TokenCount:
        """The input tokens of `messages` on `model`, by the best method available."""
        model_id, config = self._model(model)
        await self.warm(model_id, messages)
        if config.tokenizer is not Tokenizer.ANTHROPIC:
            return TokenCount(self.count_local(model_id, messages), CountMethod.EXACT_LOCAL)
        exact = await self._provider_count(model_id, config, messages)
        if exact is not None:
            return TokenCount(exact, CountMethod.PROVIDER)
        return TokenCount(self.count_local(model_id, messages), CountMethod.ESTIMATE)

    async def _provider_count(
        self, model_id: str, config: ModelConfig, messages: Sequence[Message]
    ) -> int | None:
        key = (model_id, await self.messages_digest(messages))
        cached = self._provider_counts.get(key)
        if cached is not None:
            return cached
        provider = self._providers.get(config.provider)
        if provider is None or self._clock() < self._provider_down_until.get(config.provider, 0):
            return None
        try:
            async with asyncio.timeout(self._provider_timeout_s):
                exact = await provider.count_tokens(model_id, messages)
        except (ProviderError, TimeoutError) as exc:
            self._provider_down_until[config.provider] = self._clock() + self._provider_cooldown_s
            _log.warning(
                "count_tokens_unavailable",
                provider=config.provider,
                model=model_id,
                error=type(exc).__name__,
                detail=str(exc),
            )
            return None
        if exact is None:
            return None
        self._provider_counts.put(key, exact)
        self._calibrate(config, messages, exact)
        return exact

    def observe(self, model: str, messages: Sequence[Message], input_tokens: int) -> None:
        """Calibrate the Claude estimate from an exact input count the provider reported
        for `messages` (a reply's billed `usage.input_tokens`). No-op for exact models."""
        _, config = self._model(model)
        if config.tokenizer is Tokenizer.ANTHROPIC:
            self._calibrate(config, messages, input_tokens)

    def _calibrate(self, config: ModelConfig, messages: Sequence[Message], exact: int) -> None:
        framing = config.message_overhead_tokens * len(messages) + config.reply_priming_tokens
        # Images are billed by their own formula: only the text calibrates the estimate.
        framing += sum(_image_tokens(config, m) for m in messages)
        base = sum(self._base_tokens(_CLAUDE_SCHEME, m) for m in messages)
        self.claude_estimate.observe(base, exact - framing)

    def cache_stats(self) -> CacheStats:
        """Entries, hits and misses of the per-message cache."""
        cache = self._messages
        return CacheStats(entries=len(cache), hits=cache.hits, misses=cache.misses)


def _image_tokens(config: ModelConfig, message: Message) -> int:
    """The message's images at the provider's published formula (`images`); images
    are not text, so the calibrated Claude estimate does not scale them."""
    total = 0
    for part in message.parts:
        if not isinstance(part, ImagePart):
            continue
        try:
            size = None if part.url else image_size(part.data)
        except ImageError:
            size = None  # validated at the edge; counted at the most it can cost
        if config.tokenizer is Tokenizer.ANTHROPIC:
            total += anthropic_image_tokens(size)
        else:
            total += openai_image_tokens(
                size, part.detail, config.image_base_tokens, config.image_tile_tokens
            )
    return total
