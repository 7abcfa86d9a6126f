"""A summary is a request like any other: it goes through the fallback chain, so a failed
summarizer call is retried, its failures count toward the summarizer model's breaker, and
an open circuit skips it (the history is pruned instead)."""

from __future__ import annotations

from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.context import ContextManager, ModelSummarizer, TokenCounter
from modelrouter_server.domain import Message, Role
from modelrouter_server.emulator import Behavior, Emulator
from modelrouter_server.errors import ServerError
from modelrouter_server.providers.base import Provider
from modelrouter_server.resilience import BreakerRegistry, FallbackChain

from .conftest import GPT, SMALL_GPT
from .test_window import BUDGET, OUTPUT, SYSTEM, dialogue, summarizer_calls

MESSAGES = [SYSTEM, *dialogue(30), Message(Role.USER, "Go on.")]


async def no_wait(_seconds: float) -> None:
    """The retry loop's backoff, without the wait: the test is about what is called."""


def manager_over(
    config: RouterConfig, providers: dict[str, Provider], breakers: BreakerRegistry
) -> ContextManager:
    """The composition root's wiring: the summarizer sends through the chain."""
    counter = TokenCounter(config, {})
    chain = FallbackChain(providers, breakers, config.resilience, sleep=no_wait, counter=counter)
    summarizer = ModelSummarizer(config, chain.complete_request)
    return ContextManager(config, counter, summarizer=summarizer)


async def test_a_failed_summarizer_call_is_retried(
    config: RouterConfig, providers: dict[str, Provider], emulator: Emulator
) -> None:
    emulator.enqueue(GPT, Behavior(error_status=500))
    manager = manager_over(config, providers, BreakerRegistry())
    fitted = await manager.fit(SMALL_GPT, MESSAGES, OUTPUT)
    assert summarizer_calls(emulator) == 2  # the 500, then the retry that answered
    assert fitted.replaced is not None
    assert fitted.replaced.summarizer_model == GPT
    assert fitted.report.summarized_messages > 0


async def test_an_open_circuit_skips_the_summarizer_and_history_is_pruned(
    config: RouterConfig, providers: dict[str, Provider], emulator: Emulator
) -> None:
    breakers = BreakerRegistry(fail_max=1, reset_timeout_s=60.0)
    with breakers.acquire("openai", GPT) as permit:
        permit.failure(ServerError("down", status_code=500))
    manager = manager_over(config, providers, breakers)
    fitted = await manager.fit(SMALL_GPT, MESSAGES, OUTPUT)
    assert summarizer_calls(emulator) == 0
    assert fitted.replaced is None
    assert fitted.report.pruned_messages > 0
    assert fitted.report.sent_tokens <= BUDGET


async def test_failed_summarizer_calls_open_its_circuit(
    config: RouterConfig, providers: dict[str, Provider], emulator: Emulator
) -> None:
    emulator.set_behavior(GPT, Behavior(error_status=500))
    # Fewer failures to open than attempts allowed: the circuit opens inside the retry loop.
    assert config.resilience.max_attempts_per_model > 2
    breakers = BreakerRegistry(fail_max=2, reset_timeout_s=60.0)
    manager = manager_over(config, providers, breakers)
    fitted = await manager.fit(SMALL_GPT, MESSAGES, OUTPUT)
    assert fitted.replaced is None  # pruned instead
    assert summarizer_calls(emulator) == 2  # the third attempt met the open circuit
    assert not breakers.allows("openai", GPT)
