"""The `o200k_base` tiktoken encoding, loaded from the copy shipped inside the package.

tiktoken downloads its vocabularies on first use, which cannot work offline. The package
ships the vocabulary (gzip) in `modelrouter_server/data/` and this module builds the
encoding from it, checking the same sha256 tiktoken itself checks. It is kept to one
cached function so that a loader shared with the rest of the service can replace it.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.resources
import types
from typing import Any

import tiktoken
from tiktoken_ext import openai_public  # type: ignore[import-untyped]  # ships no py.typed

_VOCABULARY = "data/o200k_base.tiktoken.gz"
_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


def _read_ranks(expected_hash: str) -> dict[bytes, int]:
    resource = importlib.resources.files("modelrouter_server").joinpath(_VOCABULARY)
    contents = gzip.decompress(resource.read_bytes())
    actual = hashlib.sha256(contents).hexdigest()
    if actual != expected_hash:
        raise ValueError(f"{_VOCABULARY}: sha256 {actual} != expected {expected_hash}")
    ranks: dict[bytes, int] = {}
    for line in contents.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def o200k() -> tiktoken.Encoding:
    """The `o200k_base` encoding (gpt-4o, gpt-4o-mini, o1, o3, o3-mini), built offline once."""

    def load_shipped(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        if expected_hash != _SHA256:
            raise ValueError(f"tiktoken expects o200k_base sha256 {expected_hash}, not {_SHA256}")
        return _read_ranks(expected_hash)

    # tiktoken keeps o200k's regex and special tokens inside the constructor function that
    # would download the vocabulary. Running that function's own code with the download
    # swapped for the shipped file takes them from tiktoken itself, without patching its
    # module or the environment.
    constructor = types.FunctionType(
        openai_public.o200k_base.__code__,
        {**openai_public.o200k_base.__globals__, "load_tiktoken_bpe": load_shipped},
    )
    spec: dict[str, Any] = constructor()
    return tiktoken.Encoding(**spec)
