"""One run's results, as the report and the figures read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.machine import Machine
from bench.rows import SystemResult
from bench.settings import BenchSettings

SYSTEMS = ("direct", "direct_aiohttp", "router1", "routerN", "litellm")
"""Every system the bench measures, in the order the report shows them."""
FLOOR = "floor"
"""The hold row's floor (bench/relay_floor.py): measured and reported in that row alone."""


@dataclass
class BenchReport:
    machine: Machine
    settings: BenchSettings
    cores: int
    systems: dict[str, SystemResult]
    standin_cpu_s: float
    elapsed_s: float
    figures: dict[str, Path]

    def system(self, key: str) -> SystemResult:
        return self.systems.get(key) or SystemResult(key, key, unavailable="not run")
