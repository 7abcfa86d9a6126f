"""The `o200k_base` encoding the emulator counts OpenAI prompts with: the same shipped,
sha256-verified vocabulary the router counts with, so their counts agree exactly."""

from __future__ import annotations

import tiktoken

from modelrouter_server.config.schema import Tokenizer
from modelrouter_server.context.vocabulary import shipped_encoding


def o200k() -> tiktoken.Encoding:
    """The `o200k_base` encoding (gpt-4o, gpt-4o-mini, o1, o3, o3-mini), loaded once."""
    return shipped_encoding(Tokenizer.O200K_BASE)
