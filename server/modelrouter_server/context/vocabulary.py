"""The BPE vocabularies of OpenAI's models, loaded offline from files shipped in the package.

tiktoken downloads its vocabularies on first use; a gateway cannot count on the internet (and
an air-gapped deployment has none), so `modelrouter_server/data/` ships them gzipped and this
module builds `tiktoken.Encoding` from them. The sha256 of each uncompressed file is checked on
load against the hash tiktoken itself expects, so a damaged or substituted file fails loudly
instead of miscounting quietly.

The split pattern and special tokens are tiktoken's own (`tiktoken_ext.openai_public`): its
constructors are run with their `load_tiktoken_bpe` bound to a loader that reads the shipped file,
so nothing is duplicated here and the network is never touched.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import types
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

# tiktoken_ext ships no py.typed marker; what is used from it is typed where it is used.
import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]

from modelrouter_server.config.schema import Tokenizer

EXPECTED_SHA256: dict[str, str] = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
"""sha256 of each uncompressed vocabulary file (tiktoken's `expected_hash`)."""


class VocabularyError(RuntimeError):
    """A shipped vocabulary is missing, unreadable or not the expected file."""


def shipped_vocabulary_path(name: str) -> Path:
    """Where the gzipped vocabulary `name` lives inside the installed package."""
    return Path(str(resources.files("modelrouter_server").joinpath("data", f"{name}.tiktoken.gz")))


def read_ranks(path: Path, *, expected_sha256: str) -> dict[bytes, int]:
    """Parse a gzipped `.tiktoken` file (one `base64-token rank` pair a line) after checking
    the sha256 of its uncompressed bytes."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise VocabularyError(f"tokenizer vocabulary {path}: cannot read: {exc}") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha256:
        raise VocabularyError(
            f"tokenizer vocabulary {path}: sha256 {actual} does not match the expected "
            f"{expected_sha256}; the file is damaged or not the right vocabulary"
        )
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if not line:
            continue
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_encoding(name: str, path: Path) -> tiktoken.Encoding:
    """An encoding from tiktoken's own definition of `name`, with its ranks read from `path`."""
    expected = EXPECTED_SHA256.get(name)
    constructors: dict[str, Callable[[], dict[str, Any]]] = openai_public.ENCODING_CONSTRUCTORS
    constructor = constructors.get(name)
    if expected is None or constructor is None:
        raise VocabularyError(f"no shipped tokenizer vocabulary named {name!r}")

    def load_shipped(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        # tiktoken passes the hash it expects; a different one means the installed tiktoken
        # defines another vocabulary than the one shipped, which must not pass unnoticed.
        if expected_hash is not None and expected_hash != expected:
            raise VocabularyError(
                f"tiktoken expects {name} with sha256 {expected_hash}, but the shipped file "
                f"is {expected}; update the vocabulary in modelrouter_server/data"
            )
        return read_ranks(path, expected_sha256=expected)

    # A copy of the constructor whose global `load_tiktoken_bpe` is the shipped-file loader:
    # tiktoken's module is left untouched (no patching of shared state).
    namespace: dict[str, Any] = {**vars(openai_public), "load_tiktoken_bpe": load_shipped}
    offline: Callable[[], dict[str, Any]] = types.FunctionType(constructor.__code__, namespace)
    spec = offline()
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


@functools.cache
def shipped_encoding(tokenizer: Tokenizer) -> tiktoken.Encoding:
    """The encoding for a tiktoken-based `Tokenizer`, loaded once per process.

    Cached process-wide because a vocabulary is immutable and takes about a second to load.
    """
    if tokenizer is Tokenizer.ANTHROPIC:
        raise VocabularyError("the anthropic tokenizer has no local vocabulary")
    return build_encoding(tokenizer.value, shipped_vocabulary_path(tokenizer.value))
