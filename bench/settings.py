"""What one benchmark run does: loads, sizes and emulator behaviors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamLoad:
    """One ghz GenerateStream load: the emulator answers `tokens` tokens at
    `tokens_per_second`; ghz keeps `concurrency` streams open over `connections`."""

    concurrency: int
    connections: int
    tokens: int
    tokens_per_second: float
    total: int | None = None
    """Streams in all; None runs for `duration_s` instead."""
    duration_s: float | None = None

    @property
    def ideal_s(self) -> float:
        """How long one stream takes with no queueing anywhere (the first token is
        immediate, each further one waits 1/rate)."""
        return (self.tokens - 1) / self.tokens_per_second


@dataclass(frozen=True)
class BenchSettings:
    """Every knob of `python -m bench`; the defaults keep a full run near 2.5 minutes."""

    unary_duration_s: float = 20.0
    unary_concurrency: int = 50
    overhead_calls: int = 200
    # 1,000 streams opened at once, each a slow 18-second answer: holding them is the test.
    burst: StreamLoad = StreamLoad(
        concurrency=1000, connections=10, tokens=10, tokens_per_second=0.5, total=1000
    )
    # Fast answers at a concurrency the router can start: how many tokens/s it relays.
    relay: StreamLoad = StreamLoad(
        concurrency=200, connections=4, tokens=100, tokens_per_second=20.0, duration_s=15.0
    )

    @classmethod
    def quick(cls) -> BenchSettings:
        """A small run to check the benchmark itself works (about 30 seconds)."""
        return cls(
            unary_duration_s=3.0,
            unary_concurrency=10,
            overhead_calls=20,
            burst=StreamLoad(
                concurrency=50, connections=2, tokens=5, tokens_per_second=5.0, total=50
            ),
            relay=StreamLoad(
                concurrency=20, connections=2, tokens=20, tokens_per_second=20.0, duration_s=3.0
            ),
        )
