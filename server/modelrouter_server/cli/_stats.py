"""Figures about a reply as the terminal shows them: time to first token, tokens per
second, cost. Measured on the client, so they include the network and the router."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelrouter_client import pb

Clock = Callable[[], float]


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_usd(amount: float) -> str:
    # Single replies cost fractions of a cent: keep six decimals below one cent.
    if amount == 0:
        return "$0"
    if abs(amount) < 0.01:
        return f"${amount:.6f}"
    return f"${amount:.4f}"


def format_rate(tokens_per_second: float | None) -> str:
    return "- tok/s" if tokens_per_second is None else f"{tokens_per_second:.1f} tok/s"


@dataclass
class ReplyMeter:
    """Timing of one streamed reply, fed with each piece of answer text as it arrives.

    Until the reply finishes its token count is the number of deltas seen (providers send
    about one token per delta; the router joins those that arrive together); `finish`
    replaces it with the billed figure, and ends the span the rate is taken over, so a
    reply that came in one delta still has a rate.
    """

    clock: Clock = time.monotonic
    started_at: float = field(default=0.0)
    first_token_at: float | None = None
    last_token_at: float | None = None
    deltas: int = 0
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    def on_text(self) -> None:
        now = self.clock()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.deltas += 1

    def finish(self, usage: pb.Usage) -> None:
        # Hidden reasoning is produced before the first visible token, so it is left out of
        # the rate at which the answer streamed.
        self.output_tokens = max(usage.output_tokens - usage.reasoning_tokens, 0)
        if self.first_token_at is not None:
            self.last_token_at = self.clock()

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.started_at

    def tokens_per_second(self) -> float | None:
        """Answer tokens per second after the first one arrived (None until it can tell)."""
        if self.first_token_at is None or self.last_token_at is None:
            return None
        tokens = self.deltas if self.output_tokens is None else self.output_tokens
        span = self.last_token_at - self.first_token_at
        # The first token marks the start of the span, so it is not counted in the rate.
        if tokens < 2 or span <= 0:
            return None
        return (tokens - 1) / span


def estimate_cost_usd(pricing: pb.Pricing | None, *, input_chars: int, output_tokens: int) -> float:
    """A running cost estimate before the billed usage arrives.

    Input tokens are guessed at four characters each (the usual ratio for English under
    cl100k/o200k); output tokens are the deltas seen so far.
    """
    if pricing is None:
        return 0.0
    input_tokens = input_chars / 4
    return (
        input_tokens * pricing.input_per_mtok + output_tokens * pricing.output_per_mtok
    ) / 1_000_000
