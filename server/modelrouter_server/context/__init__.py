"""Context-window management: token counting, conversations and their stores, fitting.

- `TokenCounter`: exact offline counts for OpenAI models (shipped tiktoken vocabularies),
  Anthropic's count_tokens or a calibrated estimate for Claude; cached per message.
- `ConversationStore` (`SQLiteStore`, `RedisStore`, `MemoryStore`, `open_store`) and
  `ConversationService`: stored conversations where nothing is ever lost.
- `ContextManager`: fits a prompt into the serving model's window by summarizing, then
  pruning, never removing the system prompt, pinned messages or the latest user turn.
"""

from modelrouter_server.context.claude_estimate import ClaudeEstimate
from modelrouter_server.context.conversation_service import ConversationService, ConversationTurn
from modelrouter_server.context.memory_store import MemoryStore
from modelrouter_server.context.redis_store import RedisStore
from modelrouter_server.context.sqlite_store import SQLiteStore
from modelrouter_server.context.store import (
    AppendResult,
    Conversation,
    ConversationPage,
    ConversationStore,
    StoredMessage,
    SummaryRecord,
)
from modelrouter_server.context.store_factory import open_store
from modelrouter_server.context.summarize import (
    ModelSummarizer,
    SendRequest,
    Summarizer,
    Summary,
)
from modelrouter_server.context.tokens import CacheStats, TokenCount, TokenCounter
from modelrouter_server.context.vocabulary import VocabularyError, shipped_encoding
from modelrouter_server.context.window import (
    ContextManager,
    FittedPrompt,
    Replacement,
    protected_indexes,
)
from modelrouter_server.domain import CountMethod

__all__ = [
    "AppendResult",
    "CacheStats",
    "ClaudeEstimate",
    "ContextManager",
    "Conversation",
    "ConversationPage",
    "ConversationService",
    "ConversationStore",
    "ConversationTurn",
    "CountMethod",
    "FittedPrompt",
    "MemoryStore",
    "ModelSummarizer",
    "RedisStore",
    "Replacement",
    "SQLiteStore",
    "SendRequest",
    "StoredMessage",
    "Summarizer",
    "Summary",
    "SummaryRecord",
    "TokenCount",
    "TokenCounter",
    "VocabularyError",
    "open_store",
    "protected_indexes",
    "shipped_encoding",
]
