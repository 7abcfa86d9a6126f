"""A local estimate of Claude token counts, for when Anthropic's count_tokens is not asked.

Claude's tokenizer is not public. A text's base estimate is the larger of two measures:
Anthropic's published rule of thumb (about 3.5 characters per token, counted here in UTF-8
bytes) and its `cl100k_base` token count (a BPE vocabulary of similar size, which counts the
scripts and symbols the character rule undercounts). The base is then scaled by a ratio that
starts at 1 and is calibrated from this process's own exact counts: each count_tokens answer
or billed input for a prompt of some size moves the ratio (an exponentially weighted average,
clamped to a sane range). The configured safety margin is added on top, so an estimate errs
towards too many tokens: a window filter that overestimates skips a model that might have
fitted, one that underestimates sends a request the provider rejects.
"""

from __future__ import annotations

import math

from modelrouter_server.config.schema import Tokenizer
from modelrouter_server.context.bounded_encode import count_tokens
from modelrouter_server.context.vocabulary import shipped_encoding

BASE_TOKENIZER = Tokenizer.CL100K_BASE
"""The local vocabulary one of the two base measures uses."""

BYTES_PER_TOKEN = 3.5
"""Anthropic's rule of thumb for English text (characters per token)."""

PRIOR_RATIO = 1.0
_MIN_RATIO = 0.5
_MAX_RATIO = 2.5


def base_tokens(text: str) -> int:
    """The uncalibrated estimate of `text`'s Claude tokens."""
    by_rule = math.ceil(len(text.encode("utf-8", "surrogatepass")) / BYTES_PER_TOKEN)
    by_bpe = count_tokens(shipped_encoding(BASE_TOKENIZER), text)
    return max(by_rule, by_bpe)


class ClaudeEstimate:
    """Scales base estimates to Claude tokens and learns the scale from exact counts."""

    def __init__(
        self,
        margin: float,
        *,
        prior_ratio: float = PRIOR_RATIO,
        smoothing: float = 0.2,
        min_sample_tokens: int = 256,
    ) -> None:
        if not 0 <= margin <= 1:
            raise ValueError("margin must be within [0, 1]")
        if not 0 < smoothing <= 1:
            raise ValueError("smoothing must be within (0, 1]")
        self._margin = margin
        self._ratio = prior_ratio
        self._smoothing = smoothing
        # Small prompts are dominated by fixed framing tokens: they would skew the ratio.
        self._min_sample_tokens = min_sample_tokens
        self.observations = 0

    @property
    def ratio(self) -> float:
        """The current Claude-tokens-per-base-token ratio (without the margin)."""
        return self._ratio

    def scale(self, base: int) -> int:
        """Estimated Claude tokens for a base estimate, margin included."""
        return math.ceil(base * self._ratio * (1 + self._margin))

    def observe(self, base: int, exact_tokens: int) -> None:
        """Learn from an exact count of content whose base estimate is `base`."""
        if base < self._min_sample_tokens or exact_tokens <= 0:
            return
        sample = min(_MAX_RATIO, max(_MIN_RATIO, exact_tokens / base))
        self._ratio += self._smoothing * (sample - self._ratio)
        self.observations += 1
