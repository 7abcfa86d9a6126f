"""The shipped tiktoken vocabularies: exact, verified, offline."""

from __future__ import annotations

import gzip
import socket
from pathlib import Path

import pytest
from modelrouter_server.config.schema import Tokenizer
from modelrouter_server.context.vocabulary import (
    EXPECTED_SHA256,
    VocabularyError,
    build_encoding,
    read_ranks,
    shipped_encoding,
    shipped_vocabulary_path,
)


def test_o200k_known_tokens() -> None:
    encoding = shipped_encoding(Tokenizer.O200K_BASE)
    assert encoding.encode("hello world") == [24912, 2375]
    assert len(encoding.encode("The quick brown fox jumps over the lazy dog.")) == 10
    assert encoding.n_vocab == 200_019


def test_cl100k_known_tokens() -> None:
    encoding = shipped_encoding(Tokenizer.CL100K_BASE)
    assert encoding.encode("hello world") == [15339, 1917]
    assert encoding.n_vocab == 100_277


def test_special_tokens_come_from_tiktoken() -> None:
    encoding = shipped_encoding(Tokenizer.O200K_BASE)
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [199_999]
    # As ordinary text it is several tokens, which is how counting treats a user's text.
    assert len(encoding.encode_ordinary("<|endoftext|>")) > 1


def test_loading_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the vocabulary loader tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    path = shipped_vocabulary_path("cl100k_base")
    encoding = build_encoding("cl100k_base", path)
    assert encoding.encode("hello world") == [15339, 1917]


def test_sha256_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    original = gzip.decompress(shipped_vocabulary_path("cl100k_base").read_bytes())
    # One rank changed: a file that parses but is not the vocabulary tiktoken defines.
    tampered = original.replace(b" 100\n", b" 101\n", 1)
    assert tampered != original
    path = tmp_path / "cl100k_base.tiktoken.gz"
    path.write_bytes(gzip.compress(tampered))

    with pytest.raises(VocabularyError, match="sha256") as caught:
        build_encoding("cl100k_base", path)
    message = str(caught.value)
    assert EXPECTED_SHA256["cl100k_base"] in message
    assert str(path) in message


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "o200k_base.tiktoken.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(VocabularyError, match="cannot read"):
        read_ranks(path, expected_sha256=EXPECTED_SHA256["o200k_base"])


def test_unknown_vocabulary_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VocabularyError, match="no shipped tokenizer vocabulary"):
        build_encoding("p50k_base", tmp_path / "p50k_base.tiktoken.gz")
    with pytest.raises(VocabularyError, match="no local vocabulary"):
        shipped_encoding(Tokenizer.ANTHROPIC)
