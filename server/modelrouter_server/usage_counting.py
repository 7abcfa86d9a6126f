"""Usage for a call whose provider reported none: counted by the router, and labelled so.

OpenAI-compatible servers often ignore `stream_options.include_usage`, and some leave usage
out of whole replies. Billing such a call as zero tokens would make cost, budgets and
metrics wrong without a sign, so the input is counted from the request and the output from
the answer: exactly for tiktoken models, with the calibrated estimate for Claude. When the
provider does send usage, its figures are used unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import structlog

from modelrouter_server.domain import CountMethod, Message, ProviderRequest, Usage

log = structlog.get_logger(__name__)


class LocalCounter(Protocol):
    """Counting without leaving the process (`context.TokenCounter` is one)."""

    async def warm(self, model: str, messages: Iterable[Message]) -> None:
        """Tokenize what is not cached yet, off the event loop when it is large."""
        ...

    def count_local(self, model: str, messages: Sequence[Message]) -> int: ...

    async def count_output(self, model: str, text: str) -> int: ...

    def local_method(self, model: str) -> CountMethod: ...


async def usage_or_count(
    reported: Usage | None,
    *,
    counter: LocalCounter | None,
    provider: str,
    request: ProviderRequest,
    output: str,
    hidden_reasoning: bool = False,
) -> Usage:
    """`reported` when the provider sent it, else the router's own count.

    `output` is everything the model generated that the router saw (answer, thinking,
    refusal). A reasoning model's reasoning is hidden (`hidden_reasoning`), so its count
    is only an ESTIMATE (a lower bound). Without a counter (unit tests of the chain) the
    call is billed as zero tokens, labelled ESTIMATE.
    """
    if reported is not None:
        return reported
    model = request.model
    if counter is None:
        return Usage(method=CountMethod.ESTIMATE)
    method = counter.local_method(model)
    if hidden_reasoning:
        method = CountMethod.ESTIMATE
    # A continuation's prefix is new text, and an answer can be long: neither is
    # tokenized on the event loop when large.
    await counter.warm(model, request.messages)
    usage = Usage(
        input_tokens=counter.count_local(model, request.messages),
        output_tokens=await counter.count_output(model, output),
        method=method,
    )
    log.info(
        "usage_counted_locally",
        request_id=request.request_id,
        model=model,
        provider=provider,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        method=method.value,
    )
    return usage
