"""What one `make bench` run does: the loads of each row, the same for every system."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamRow:
    """Streams of `tokens` tokens, each sent `delay_ms` after the one before (0: all at
    once), `concurrency` at a time, for `duration_s` or `total` streams in all."""

    concurrency: int
    tokens: int
    delay_ms: float = 0.0
    duration_s: float | None = None
    total: int | None = None
    opened_per_s: int | None = None
    """How many streams start per second (None: all at once)."""
    first_ms: float | None = None
    """The first token's delay (None: `delay_ms` like the others)."""

    @property
    def prompt(self) -> str:
        first = "" if self.first_ms is None else f" first_ms={self.first_ms:g}"
        return f"tokens={self.tokens} delay_ms={self.delay_ms:g}{first}"

    @property
    def ideal_s(self) -> float:
        """One stream's duration with no queueing anywhere: every token waits its delay."""
        first = self.delay_ms if self.first_ms is None else self.first_ms
        return (first + (self.tokens - 1) * self.delay_ms) / 1000


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of `python -m bench`; the defaults keep a full run near 13 minutes on
    2 cores."""

    unary_concurrency: tuple[int, ...] = (1, 16, 50)
    unary_duration_s: float = 6.0
    unary_tokens: int = 16
    stream: StreamRow = StreamRow(concurrency=16, tokens=200, duration_s=6.0)
    # Paced streams for the inter-token gaps: 16 at a time, a token every 10 ms.
    paced: StreamRow = StreamRow(concurrency=16, tokens=100, delay_ms=10, total=160)
    # 1,000 streams opened at once, 12 tokens at 1 token/s: ideal 12 s each.
    burst: StreamRow = StreamRow(concurrency=1000, tokens=12, delay_ms=1000, total=1000)
    # Open streams held on a slow upstream, for memory per stream: the first token at
    # once, then one every 20 s (inside the router's 30 s first- and inter-token
    # timeouts), 80 s in all. Opened at 150/s (67 s for 10,000): all at once overflow
    # the stand-in's accept backlog, and at 250/s a one-worker router on 2 shared cores
    # fell more than its 5 s connect timeout behind at ~2,400 open; holding is the test
    # here, not opening fast.
    hold: StreamRow = StreamRow(
        concurrency=10_000,
        tokens=5,
        delay_ms=20_000,
        first_ms=0,
        total=10_000,
        opened_per_s=150,
    )
    warmup_calls: int = 200

    @classmethod
    def quick(cls) -> BenchSettings:
        """A small run of every code path, to check the bench itself (about a minute)."""
        return cls(
            unary_concurrency=(1, 16),
            unary_duration_s=1.0,
            stream=StreamRow(concurrency=4, tokens=50, duration_s=1.0),
            paced=StreamRow(concurrency=4, tokens=20, delay_ms=10, total=8),
            burst=StreamRow(concurrency=50, tokens=3, delay_ms=500, total=50),
            hold=StreamRow(
                concurrency=200, tokens=3, delay_ms=2000, first_ms=0, total=200, opened_per_s=200
            ),
            warmup_calls=20,
        )
