"""The breaker state machine on a fake clock: closed -> open -> half-open (one probe) ->
closed or open again; client errors never count; a cancelled probe frees the gate."""

from __future__ import annotations

import asyncio

import pytest
from modelrouter_server.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    InvalidProviderRequest,
    ProviderError,
    ServerError,
)
from modelrouter_server.resilience import (
    BreakerRegistry,
    CircuitOpen,
    CircuitState,
    CircuitTransition,
)
from modelrouter_testsupport.fake_clock import FakeClock
from structlog.testing import capture_logs

P, M = "alpha", "small"


def registry(clock: FakeClock, transitions: list[CircuitTransition]) -> BreakerRegistry:
    return BreakerRegistry(
        fail_max=3, reset_timeout_s=10.0, clock=clock, observers=[transitions.append]
    )


def fail(breakers: BreakerRegistry, error: ProviderError | None = None, times: int = 1) -> None:
    for _ in range(times):
        with breakers.acquire(P, M) as permit:
            permit.failure(error or ServerError("boom", status_code=500))


def trip(breakers: BreakerRegistry) -> None:
    fail(breakers, times=3)
    assert breakers.state(P, M) is CircuitState.OPEN


def moves(transitions: list[CircuitTransition]) -> list[tuple[str, str]]:
    return [(t.from_state.value, t.to_state.value) for t in transitions]


def test_opens_after_fail_max_consecutive_health_failures() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    fail(breakers, times=2)
    assert breakers.state(P, M) is CircuitState.CLOSED
    fail(breakers)
    assert breakers.state(P, M) is CircuitState.OPEN
    assert moves(seen) == [("closed", "open")]
    assert seen[0].provider == P and seen[0].model == M and seen[0].at == clock()


def test_a_success_resets_the_consecutive_count() -> None:
    breakers = registry(FakeClock(), [])
    fail(breakers, times=2)
    with breakers.acquire(P, M) as permit:
        permit.success()
    fail(breakers, times=2)
    assert breakers.state(P, M) is CircuitState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        InvalidProviderRequest("bad", status_code=400),
        InvalidProviderRequest("too large", status_code=413),
        ContextWindowExceeded("prompt is too long", status_code=400),
        AuthenticationFailed("bad key", status_code=401),
    ],
    ids=["400", "413", "context", "401"],
)
def test_client_errors_never_open_the_circuit(error: ProviderError) -> None:
    seen: list[CircuitTransition] = []
    breakers = registry(FakeClock(), seen)
    fail(breakers, error, times=20)
    assert breakers.state(P, M) is CircuitState.CLOSED
    assert seen == []


def test_client_errors_do_not_reset_the_failure_count_either() -> None:
    breakers = registry(FakeClock(), [])
    fail(breakers, times=2)
    fail(breakers, InvalidProviderRequest("bad", status_code=400))
    fail(breakers)
    assert breakers.state(P, M) is CircuitState.OPEN


def test_open_circuit_refuses_until_the_cool_down_passes() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    trip(breakers)
    clock.advance(9.9)
    assert not breakers.allows(P, M)
    with pytest.raises(CircuitOpen) as refused:
        breakers.acquire(P, M)
    assert refused.value.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breakers.allows(P, M)


def test_half_open_lets_exactly_one_probe_through_and_success_closes() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    trip(breakers)
    clock.advance(10.0)
    probe = breakers.acquire(P, M)
    assert probe.probe
    assert breakers.state(P, M) is CircuitState.HALF_OPEN
    # Everyone else is refused while the probe is in flight.
    assert not breakers.allows(P, M)
    for _ in range(5):
        with pytest.raises(CircuitOpen) as refused:
            breakers.acquire(P, M)
        assert refused.value.state is CircuitState.HALF_OPEN
    probe.success()
    assert breakers.state(P, M) is CircuitState.CLOSED
    assert moves(seen) == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    # Closed again: calls flow and the failure count starts from zero.
    fail(breakers, times=2)
    assert breakers.state(P, M) is CircuitState.CLOSED


def test_failed_probe_reopens_for_a_new_cool_down() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    trip(breakers)
    clock.advance(10.0)
    with breakers.acquire(P, M) as probe:
        probe.failure(ServerError("still down", status_code=503))
    assert breakers.state(P, M) is CircuitState.OPEN
    reopened_at = clock()
    clock.advance(9.0)
    assert not breakers.allows(P, M)
    clock.advance(1.0)
    assert breakers.allows(P, M)
    assert seen[-1].to_state is CircuitState.OPEN and seen[-1].at == reopened_at


def test_probe_ending_in_a_client_error_frees_the_gate_without_closing() -> None:
    clock = FakeClock()
    breakers = registry(clock, [])
    trip(breakers)
    clock.advance(10.0)
    with breakers.acquire(P, M) as probe:
        probe.failure(InvalidProviderRequest("bad", status_code=400))
    assert breakers.state(P, M) is CircuitState.HALF_OPEN
    assert breakers.acquire(P, M).probe


async def test_cancelled_probe_releases_the_gate_and_counts_as_nothing() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    trip(breakers)
    clock.advance(10.0)
    entered = asyncio.Event()

    async def probe_call() -> None:
        with breakers.acquire(P, M):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(probe_call())
    await entered.wait()
    assert not breakers.allows(P, M)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Neither success nor failure: still half-open, and the next caller may probe.
    assert breakers.state(P, M) is CircuitState.HALF_OPEN
    assert breakers.allows(P, M)
    with breakers.acquire(P, M) as probe:
        assert probe.probe
        probe.success()
    assert moves(seen)[-1] == ("half_open", "closed")


def test_late_results_of_calls_admitted_while_closed_do_not_move_an_open_circuit() -> None:
    clock = FakeClock()
    breakers = registry(clock, [])
    early = breakers.acquire(P, M)
    trip(breakers)
    early.success()
    assert breakers.state(P, M) is CircuitState.OPEN


def test_endpoints_are_independent() -> None:
    breakers = registry(FakeClock(), [])
    trip(breakers)
    assert breakers.state(P, "big") is CircuitState.CLOSED
    assert breakers.allows("beta", M)


def test_every_transition_is_logged() -> None:
    clock = FakeClock()
    breakers = registry(clock, [])
    with capture_logs() as logs:
        trip(breakers)
        clock.advance(10.0)
        with breakers.acquire(P, M) as probe:
            probe.success()
    changes = [e for e in logs if e["event"] == "circuit_state_changed"]
    assert [(e["from"], e["to"]) for e in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert all(e["provider"] == P and e["model"] == M for e in changes)


def test_a_failing_observer_does_not_break_the_breaker() -> None:
    def broken(_: CircuitTransition) -> None:
        raise RuntimeError("metrics down")

    breakers = BreakerRegistry(fail_max=1, reset_timeout_s=1.0, clock=FakeClock())
    breakers.add_observer(broken)
    fail(breakers)
    assert breakers.state(P, M) is CircuitState.OPEN


def test_a_stream_probe_is_decided_by_its_first_token() -> None:
    clock, seen = FakeClock(), list[CircuitTransition]()
    breakers = registry(clock, seen)
    trip(breakers)
    clock.advance(10.0)
    with breakers.acquire(P, M) as probe:
        probe.first_token()
        assert breakers.state(P, M) is CircuitState.CLOSED
        assert breakers.allows(P, M)
        # The rest of the stream is an ordinary call: a break still counts.
        probe.failure(ServerError("dropped"))
    fail(breakers, times=2)
    assert breakers.state(P, M) is CircuitState.OPEN
