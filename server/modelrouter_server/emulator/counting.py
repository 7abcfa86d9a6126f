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

from collections.abc import Mapping, Sequence

from modelrouter_server.emulator._tokens import o200k
from modelrouter_server.emulator.conversation import content_text

OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_TOKENS_PER_NAME = 1
OPENAI_REPLY_PRIMING = 3
CLAUDE_TOKENS_PER_MESSAGE = 3


def openai_prompt_tokens(messages: Sequence[Mapping[str, object]]) -> int:
    """Prompt tokens of a chat completion request's `messages`."""
    encoding = o200k()
    total = OPENAI_REPLY_PRIMING
    for message in messages:
        total += OPENAI_TOKENS_PER_MESSAGE
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
