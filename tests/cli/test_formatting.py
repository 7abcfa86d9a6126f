"""How the terminal client formats figures, tables and the status line."""

from __future__ import annotations

import pytest
from modelrouter_client import pb
from modelrouter_server.cli._stats import ReplyMeter, estimate_cost_usd, format_seconds, format_usd
from modelrouter_server.cli._terminal import Style, _cut
from modelrouter_server.cli.count_tokens import describe_count
from modelrouter_server.cli.models import render_table


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_meter_measures_ttft_and_rate_after_the_first_token() -> None:
    clock = FakeClock()
    meter = ReplyMeter(clock=clock)
    assert meter.ttft_s is None and meter.tokens_per_second() is None
    clock.now = 100.25
    meter.on_text()
    assert meter.ttft_s == pytest.approx(0.25)
    assert meter.tokens_per_second() is None  # one token: no rate yet
    for _ in range(10):
        clock.now += 0.1
        meter.on_text()
    assert meter.tokens_per_second() == pytest.approx(10.0)
    # The billed count replaces the delta count; hidden reasoning is left out.
    meter.finish(pb.Usage(output_tokens=31, reasoning_tokens=10))
    assert meter.tokens_per_second() == pytest.approx(20.0)


def test_figures() -> None:
    assert format_seconds(None) == "-"
    assert format_seconds(0.0424) == "42 ms"
    assert format_seconds(2.5) == "2.50 s"
    assert format_usd(0) == "$0"
    assert format_usd(0.0000123) == "$0.000012"
    assert format_usd(1.5) == "$1.5000"
    pricing = pb.Pricing(input_per_mtok=1.0, output_per_mtok=2.0)
    assert estimate_cost_usd(pricing, input_chars=4_000, output_tokens=500) == pytest.approx(0.002)
    assert estimate_cost_usd(None, input_chars=4_000, output_tokens=500) == 0.0


def test_cut_keeps_escapes_and_counts_only_printable_characters() -> None:
    style = Style(enabled=True)
    text = style.dim("abcdef")
    cut = _cut(text, 3)
    assert cut == "\x1b[2mabc\x1b[0m"
    assert _cut("abc", 10) == "abc"


def test_readline_prompt_marks_escapes_as_zero_width() -> None:
    assert (
        Style(enabled=True).readline_safe("\x1b[1mhi\x1b[0m") == "\001\x1b[1m\002hi\001\x1b[0m\002"
    )
    assert Style(enabled=False).readline_safe("hi") == "hi"


def test_models_table_aligns_columns() -> None:
    models = [
        pb.ModelInfo(
            id="a-long-model-id",
            provider="p",
            context_window=128_000,
            max_output_tokens=16_384,
            pricing=pb.Pricing(input_per_mtok=0.15, output_per_mtok=0.6),
            circuit_state=pb.CIRCUIT_STATE_OPEN,
            aliases=["a", "b"],
        ),
        pb.ModelInfo(id="m", provider="q", context_window=8, emulated=True),
    ]
    # Text left-aligned, numbers right-aligned, every column starting under its header.
    header = "MODEL            PROVIDER  CONTEXT  MAX OUT  $IN/MTOK  $OUT/MTOK  CIRCUIT  "
    assert render_table(models).splitlines() == [
        header + "EMULATED  ALIASES",
        "a-long-model-id  p         128,000   16,384      0.15       0.60  OPEN     no        a, b",
        "m                q               8        0      0.00       0.00  -        yes       -",
    ]


def test_count_description() -> None:
    response = pb.CountTokensResponse(
        input_tokens=1_280, model="m", method=pb.COUNT_METHOD_ESTIMATE, context_window=128_000
    )
    assert describe_count(response) == (
        "1280 input tokens on m (estimate; 1.00% of its 128,000-token window)"
    )
