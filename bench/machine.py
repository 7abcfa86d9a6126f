"""What the benchmark ran on, for the report's header."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    grpcio: str
    revision: str
    load_average: str
    """/proc/loadavg's 1, 5 and 15-minute figures when the run started: on a shared
    machine, how much else was running."""

    def markdown(self) -> str:
        return (
            f"| CPUs (nproc) | {self.cpus} ({self.cpu_model}) |\n"
            f"| memory | {self.memory_gib:.1f} GiB |\n"
            f"| kernel | {self.kernel} |\n"
            f"| Python / grpcio | {self.python} / {self.grpcio} |\n"
            f"| revision | {self.revision} |\n"
            f"| load average at start (1/5/15 min) | {self.load_average} |\n"
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return 0.0


def _revision(root: Path) -> str:
    # Read-only: which commit the numbers belong to, and whether the tree had edits.
    result = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def describe_machine(root: Path) -> Machine:
    return Machine(
        cpus=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        memory_gib=_memory_gib(),
        kernel=platform.release(),
        python=platform.python_version(),
        grpcio=metadata.version("grpcio"),
        revision=_revision(root),
        load_average=_load_average(),
    )


def _load_average() -> str:
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # Fields after the command name, which is parenthesised and may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux: from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.extend(int(child) for child in text.split())
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a router's workers)."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(_children(current))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its descendants together."""
    return sum(_rss_bytes(p) for p in process_tree(pid))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds `pid` and its living descendants have used."""
    return sum(process_cpu_s(p) for p in process_tree(pid))
