"""How the emulator counts input tokens, for usage, window checks and count_tokens.

OpenAI models: tiktoken `o200k_base` with the OpenAI cookbook's chat overhead: 3 tokens per
message, the tokens of every string field of the message (role, content, name), 1 more for
a `name`, and 3 to prime the reply. This matched the real API exactly for gpt-4o-mini;
PROVIDERS.md notes o3-mini counts one lower, which the emulator does not imitate.

Claude models: Anthropic publishes no tokenizer, so the emulator uses a deterministic
approximation: ceil(utf-8 bytes / 3.5) for each text (the system prompt and each message's
text), plus 3 per message. Only the router's own estimates need to agree with it, and the
emulator's count_tokens endpoint returns exactly this count.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence

from modelrouter_server.emulator._tokens import o200k
from modelrouter_server.emulator.conversation import content_text
from modelrouter_server.images import (
    ImageError,
    ImageSize,
    anthropic_image_tokens,
    image_size,
    openai_image_tokens,
)

OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3
CLAUDE_TOKENS_PER_MESSAGE = 3


def openai_prompt_tokens(
    messages: Sequence[Mapping[str, object]], image_base: int = 85, image_tile: int = 170
) -> int:
    """Prompt tokens of a chat completion request's `messages`, images at OpenAI's tile
    formula with the model's base and tile prices."""
    encoding = o200k()
    total = OPENAI_REPLY_PRIMING
    for message in messages:
        total += OPENAI_TOKENS_PER_MESSAGE
        for url, detail in _openai_images(message.get("content")):
            total += openai_image_tokens(_data_url_size(url), detail, image_base, image_tile)
        for key, value in message.items():
            text = content_text(value) if key == "content" else value
            if isinstance(text, str):
                total += len(encoding.encode_ordinary(text))
            if key == "name":
                total += OPENAI_TOKENS_PER_NAME
    return total


def claude_text_tokens(text: str) -> int:
    """ceil(utf-8 bytes / 3.5), in integers."""
    return (2 * len(text.encode("utf-8")) + 6) // 7


def claude_input_tokens(system: str, messages: Sequence[str]) -> int:
    """Input tokens of a Messages request, from its system text and each message's text."""
    return claude_text_tokens(system) + sum(
        CLAUDE_TOKENS_PER_MESSAGE + claude_text_tokens(text) for text in messages
    )


def _openai_images(content: object) -> list[tuple[str, str]]:
    out = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            if isinstance(image, Mapping) and isinstance(image.get("url"), str):
                out.append((str(image["url"]), str(image.get("detail") or "auto")))
    return out


def _data_url_size(url: str) -> ImageSize | None:
    """The size of a base64 data URL's image; None for a remote URL (or bad data)."""
    if not url.startswith("data:"):
        return None
    _, _, encoded = url.partition(";base64,")
    return _size_of(encoded)


def _size_of(encoded: str) -> ImageSize | None:
    try:
        return image_size(base64.b64decode(encoded, validate=True))
    except (ImageError, ValueError):
        return None


def claude_image_tokens(content: object) -> int:
    """Tokens of the image blocks in a Messages API content list (Anthropic's formula)."""
    total = 0
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping) or block.get("type") != "image":
            continue
        source = block.get("source")
        size = None
        if isinstance(source, Mapping) and source.get("type") == "base64":
            size = _size_of(str(source.get("data", "")))
        total += anthropic_image_tokens(size)
    return total
