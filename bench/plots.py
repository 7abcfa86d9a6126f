"""The report's PNG figures (matplotlib, drawn off-screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a server or in CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def grouped_bars(
    values: Mapping[str, Mapping[int, float]], title: str, ylabel: str, path: Path
) -> Path:
    """One group of bars per x key (a concurrency), one bar per series (a system)."""
    keys = sorted({k for series in values.values() for k in series})
    figure, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(values), 1)
    for i, (label, series) in enumerate(values.items()):
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [series.get(k, 0.0) for k in keys], width, label=label)
    ax.set_xticks([j + width * (len(values) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"concurrency {k}" for k in keys])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def cdf_comparison(
    series: Mapping[str, Mapping[str, Sequence[float]]], title: str, path: Path
) -> Path:
    """One panel per measure, each with the CDF of every path (samples in seconds)."""
    figure, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 3.6), squeeze=False)
    for ax, (measure, paths) in zip(axes[0], series.items(), strict=True):
        for label, samples in paths.items():
            ordered = sorted(s * 1000 for s in samples)
            if not ordered:
                continue
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, fractions, label=label)
        ax.set_xlabel(f"{measure} (ms)")
        ax.set_ylabel("fraction")
        ax.set_xscale("log")
        ax.set_title(measure, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    return _save(figure, path)


def hold_over_time(series: Mapping[str, Sequence[tuple[float, int, int]]], path: Path) -> Path:
    """Per system: streams open at the upstream and the server's RSS, over time."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True)
    for label, samples in series.items():
        times = [t for t, _, _ in samples]
        top.plot(times, [n for _, n, _ in samples], label=label)
        bottom.plot(times, [rss / 2**20 for _, _, rss in samples], label=label)
    top.set_ylabel("streams open upstream")
    bottom.set_ylabel("server RSS (MiB)")
    bottom.set_xlabel("seconds since the streams were opened")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title("Open streams held")
    return _save(figure, path)
