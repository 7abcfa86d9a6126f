"""One load's outcome, whichever client drove it (ghz or the Python SDK client)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.ghz import Call, GhzRun
from bench.stats import Summary


@dataclass(frozen=True)
class LoadRun:
    """Every call of one load, the wall time it took and the content chunks received."""

    name: str
    concurrency: int
    calls: tuple[Call, ...]
    wall_s: float
    chunks: int
    """Content chunks (tokens) the client received over all streams; 0 for unary loads."""
    server_cpu_s: float = 0.0
    """CPU the system under test used meanwhile (the router's processes); 0 when unknown."""

    @property
    def count(self) -> int:
        return len(self.calls)

    @property
    def ok(self) -> int:
        return sum(1 for c in self.calls if c.status == "OK")

    @property
    def rate(self) -> float:
        """Successful calls per second of wall time."""
        return self.ok / self.wall_s if self.wall_s else 0.0

    @property
    def chunk_rate(self) -> float:
        return self.chunks / self.wall_s if self.wall_s else 0.0

    @property
    def latency(self) -> Summary:
        return Summary.of([c.latency_s for c in self.calls if c.status == "OK"])

    def errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for call in self.calls:
            if call.status != "OK":
                key = f"{call.status}: {call.error}"[:160]
                found[key] = found.get(key, 0) + 1
        return found

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LoadRun:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["calls"] = tuple(Call(**c) for c in raw["calls"])
        return cls(**raw)


def from_ghz(run: GhzRun, *, tokens_per_stream: int = 0, server_cpu_s: float = 0.0) -> LoadRun:
    """A ghz run as a `LoadRun`; ghz does not count stream messages, so a stream's chunks
    are its scripted token count when it ended OK."""
    ok = run.ok
    wall = _span(run.calls) or run.total_s
    return LoadRun(
        name=run.name,
        concurrency=run.concurrency,
        calls=run.calls,
        wall_s=wall,
        chunks=tokens_per_stream * ok,
        server_cpu_s=server_cpu_s,
    )


def _span(calls: Sequence[Call]) -> float:
    if not calls:
        return 0.0
    return max(c.end_s for c in calls) - min(c.start_s for c in calls)
