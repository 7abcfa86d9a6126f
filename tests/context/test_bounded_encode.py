"""Counting in slices: exact on ordinary text, bounded slices on a pathological run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from modelrouter_server.config.schema import Tokenizer
from modelrouter_server.context.bounded_encode import (
    HARD_CUT_CHARS,
    SLICE_CHARS,
    count_tokens,
    slices,
)
from modelrouter_server.context.vocabulary import shipped_encoding

_ROOT = Path(__file__).resolve().parents[2]


def _mixed_text() -> str:
    rnd = random.Random(7)
    parts = ["hello", " ", "  ", "\n", "été", "123456", "!!", "\t", "日本語", "'s", " world"]
    parts.append("\r\n")
    return "".join(rnd.choice(parts) for _ in range(60_000))


@pytest.mark.parametrize("tokenizer", [Tokenizer.O200K_BASE, Tokenizer.CL100K_BASE])
@pytest.mark.parametrize("source", ["code", "mixed"])
def test_ordinary_text_counts_exactly_as_one_call(tokenizer: Tokenizer, source: str) -> None:
    if source == "code":
        files = sorted((_ROOT / "server").rglob("*.py"))[:60]
        text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    else:
        text = _mixed_text()
    assert len(text) > 10 * SLICE_CHARS
    encoding = shipped_encoding(tokenizer)
    assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))


def test_slices_cover_the_text_and_stay_short() -> None:
    for text in ("a" * 100_000, " " * 50_000, _mixed_text()):
        parts = list(slices(text))
        assert "".join(parts) == text
        assert all(len(p) <= SLICE_CHARS for p in parts)
        assert all(len(p) >= HARD_CUT_CHARS for p in parts[:-1])


def test_a_run_of_one_character_is_cut_and_counted_close_to_exact() -> None:
    encoding = shipped_encoding(Tokenizer.O200K_BASE)
    text = "ab" * 30_001
    exact = len(encoding.encode_ordinary(text))
    counted = count_tokens(encoding, text)
    cuts = len(list(slices(text))) - 1
    assert exact <= counted <= exact + cuts
