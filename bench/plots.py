"""The report's PNG figures (matplotlib, drawn off-screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a server or in CI

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.ghz import Call
from bench.stats import percentile

_DPI = 110


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    plt.close(figure)
    return path


def _mark_percentiles(ax: Axes, samples_ms: Sequence[float]) -> None:
    for q, style in ((50, "--"), (99, ":")):
        value = percentile(samples_ms, q)
        ax.axvline(value, color="black", linestyle=style, linewidth=1)
        ax.annotate(
            f"p{q} {value:.0f} ms",
            (value, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
        )


def latency_histogram(calls: Sequence[Call], title: str, path: Path) -> Path:
    """Distribution of call latencies (successful calls), with p50 and p99 marked."""
    samples_ms = [c.latency_s * 1000 for c in calls if c.status == "OK"]
    figure, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(samples_ms, bins=60, color="#4878d0")
    if samples_ms:
        _mark_percentiles(ax, samples_ms)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("calls")
    ax.set_title(title)
    return _save(figure, path)


def _bins(calls: Sequence[Call], width_s: float) -> tuple[float, int]:
    origin = min(c.start_s for c in calls)
    end = max(c.end_s for c in calls)
    return origin, int((end - origin) / width_s) + 1


def throughput_over_time(
    calls: Sequence[Call], title: str, path: Path, *, width_s: float = 0.5
) -> Path:
    """Completed calls per second (and failures), in `width_s` bins from the run's start."""
    figure, ax = plt.subplots(figsize=(7, 3.2))
    if calls:
        origin, count = _bins(calls, width_s)
        ok = [0] * count
        failed = [0] * count
        for call in calls:
            index = int((call.end_s - origin) / width_s)
            (ok if call.status == "OK" else failed)[index] += 1
        times = [i * width_s for i in range(count)]
        ax.plot(times, [n / width_s for n in ok], color="#4878d0", label="OK")
        if any(failed):
            ax.plot(times, [n / width_s for n in failed], color="#d65f5f", label="errors")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("completed calls / s")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    return _save(figure, path)


def open_streams_over_time(
    calls: Sequence[Call],
    title: str,
    path: Path,
    *,
    server_inflight: Sequence[tuple[float, float]] = (),
    width_s: float = 0.25,
) -> Path:
    """Streams open at each moment as the client saw them (from each call's start and end),
    with the router's own in-flight gauge when it was scraped, and completions per second."""
    figure, ax = plt.subplots(figsize=(7, 3.4))
    if calls:
        origin, count = _bins(calls, width_s)
        times = [i * width_s for i in range(count)]
        open_at = [sum(c.start_s <= origin + t < c.end_s for c in calls) for t in times]
        ax.plot(times, open_at, color="#4878d0", label="open (client)")
        if server_inflight:
            ax.plot(
                [t - origin for t, _ in server_inflight],
                [v for _, v in server_inflight],
                color="#6acc64",
                linestyle="--",
                label="in flight (router gauge)",
            )
        done = [0] * count
        for call in calls:
            done[int((call.end_s - origin) / width_s)] += 1
        twin = ax.twinx()
        twin.plot(times, [n / width_s for n in done], color="#ee854a", alpha=0.6)
        twin.set_ylabel("completed streams / s", color="#ee854a")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("open streams")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    return _save(figure, path)


def cdf_comparison(
    series: Mapping[str, Mapping[str, Sequence[float]]], title: str, path: Path
) -> Path:
    """One panel per measure, each with the CDF of every path (samples in seconds)."""
    figure, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (measure, paths) in zip(axes[0], series.items(), strict=True):
        for label, samples in paths.items():
            ordered = sorted(s * 1000 for s in samples)
            if not ordered:
                continue
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            ax.plot(ordered, fractions, label=label)
        ax.set_xlabel(f"{measure} (ms)")
        ax.set_ylabel("fraction of calls")
        ax.set_title(measure, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    return _save(figure, path)
