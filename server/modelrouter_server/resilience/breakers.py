"""Circuit breakers, one per (provider, model) endpoint, on aiobreaker.

aiobreaker holds the state machine: consecutive-failure counting, tripping at `fail_max`,
half-open -> closed on success and -> open on failure, and state-change listeners. Three
things it does not do are added here:

- Outcomes are fed, not wrapped. aiobreaker's `call`/`call_async` see a call as one
  awaitable, but a stream attempt outlives any single await, so each attempt takes a
  `Permit` and reports its outcome when it ends; the registry replays that outcome into
  `CircuitBreaker.call` with a function that returns or raises. Only provider-health
  failures (`facts_for(error).retryable`) are replayed as failures; a client error (400, 413,
  context length, auth) is reported as neither success nor failure, so it can never open a
  circuit (aiobreaker's `exclude` would count it as a success instead, which could close a
  half-open circuit on a 400).
- One probe at a time. aiobreaker lets every concurrent caller through while half-open;
  here the first caller after the cool-down holds the probe slot and the others are refused
  as if the circuit were open until the probe reports (a stream reports at its first
  event, see `Permit.first_token`). A probe that ends without a verdict (cancelled, client
  error, caller's deadline) frees the slot and leaves the circuit half-open for the next
  caller.
- An injectable clock. aiobreaker times the cool-down with `datetime.utcnow()`, which a
  test cannot move; the registry keeps its own open time on `clock` and performs the
  open -> half-open move itself, so aiobreaker's clock is never consulted.
"""

from __future__ import annotations

import enum
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import aiobreaker
import structlog

from modelrouter_server.config.schema import ResilienceConfig
from modelrouter_server.error_facts import facts_for
from modelrouter_server.errors import ProviderError
from modelrouter_server.resilience.timing import Clock

log = structlog.get_logger(__name__)


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_FROM_AIOBREAKER = {
    aiobreaker.CircuitBreakerState.CLOSED: CircuitState.CLOSED,
    aiobreaker.CircuitBreakerState.OPEN: CircuitState.OPEN,
    aiobreaker.CircuitBreakerState.HALF_OPEN: CircuitState.HALF_OPEN,
}


@dataclass(frozen=True, slots=True)
class CircuitTransition:
    """One state change of one endpoint's circuit; `at` is on the registry's clock."""

    provider: str
    model: str
    from_state: CircuitState
    to_state: CircuitState
    at: float


TransitionObserver = Callable[[CircuitTransition], None]
"""Called synchronously on every transition (metrics, tests); errors are logged."""


class CircuitOpen(Exception):
    """The endpoint's circuit refused a call (open, or a half-open probe is in flight)."""

    def __init__(self, provider: str, model: str, state: CircuitState) -> None:
        super().__init__(f"circuit {state.value} for {provider}/{model}")
        self.provider = provider
        self.model = model
        self.state = state


class _HealthFailure(Exception):
    """Replays a provider-health failure into aiobreaker."""


def _succeed() -> None:
    return None


def _fail(error: ProviderError) -> None:
    raise _HealthFailure(error.message)


class _Listener:
    """aiobreaker's listener interface, duck-typed (its base class is untyped)."""

    def __init__(self, endpoint: _Endpoint) -> None:
        self._endpoint = endpoint

    def before_call(self, breaker: object, func: object, *args: object, **kwargs: object) -> None:
        pass

    def failure(self, breaker: object, exception: BaseException) -> None:
        pass

    def success(self, breaker: object) -> None:
        pass

    def state_change(self, breaker: object, old: object, new: object) -> None:
        # `old`/`new` are aiobreaker state objects; their `.state` is the enum member.
        # aiobreaker notifies before it updates its storage, so read only these arguments.
        before = getattr(old, "state", None)
        after = getattr(new, "state", None)
        if before is not None and after is not None:
            self._endpoint.changed(_FROM_AIOBREAKER[before], _FROM_AIOBREAKER[after])


class _Endpoint:
    """One (provider, model) circuit: aiobreaker plus the open time and the probe slot."""

    def __init__(self, registry: BreakerRegistry, provider: str, model: str) -> None:
        self.registry = registry
        self.provider = provider
        self.model = model
        self.opened_at = 0.0
        self.probe_in_flight = False
        self.breaker = aiobreaker.CircuitBreaker(
            fail_max=registry.fail_max,
            timeout_duration=timedelta(seconds=registry.reset_timeout_s),
            listeners=[_Listener(self)],
            name=f"{provider}/{model}",
        )

    @property
    def state(self) -> CircuitState:
        return _FROM_AIOBREAKER[self.breaker.current_state]

    def cooled_down(self) -> bool:
        return self.registry.clock() - self.opened_at >= self.registry.reset_timeout_s

    def changed(self, before: CircuitState, after: CircuitState) -> None:
        if after is CircuitState.OPEN:
            self.opened_at = self.registry.clock()
        self.registry.notify(
            CircuitTransition(self.provider, self.model, before, after, self.registry.clock())
        )

    def replay(self, ok: bool, error: ProviderError | None) -> None:
        try:
            if ok:
                self.breaker.call(_succeed)
            else:
                self.breaker.call(_fail, error)
        except (_HealthFailure, aiobreaker.CircuitBreakerError):
            # The replayed failure coming back out, or aiobreaker announcing that it
            # tripped: both are the expected result of recording a failure.
            pass


class Permit:
    """Leave for one call through an endpoint; report exactly one outcome.

    `success()` and `failure(error)` feed the breaker; `release()` reports nothing (used
    for cancellation, client errors and the caller's deadline). Used as a context manager,
    a permit left unreported is released on exit, so a cancelled call never leaks the
    half-open probe slot.
    """

    __slots__ = ("_endpoint", "_settled", "probe")

    def __init__(self, endpoint: _Endpoint, *, probe: bool) -> None:
        self._endpoint = endpoint
        self._settled = False
        self.probe = probe
        """True when this call is the single half-open probe."""

    def success(self) -> None:
        self._settle(ok=True, error=None)

    def first_token(self) -> None:
        """A stream's first event arrived: enough to decide a half-open probe.

        A stream can run for minutes; holding the probe slot that long would keep a
        recovered endpoint shut to everyone else. The probe closes the circuit here and
        the call carries on as an ordinary one, so a later break still counts as a failure.
        """
        if self.probe and not self._settled:
            self.probe = False
            endpoint = self._endpoint
            endpoint.probe_in_flight = False
            if endpoint.state is CircuitState.HALF_OPEN:
                endpoint.replay(True, None)

    def failure(self, error: ProviderError) -> None:
        """Report a failed call; counted only when the provider's health is at fault."""
        if facts_for(error).retryable:
            self._settle(ok=False, error=error)
        else:
            self.release()

    def release(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self.probe:
            self._endpoint.probe_in_flight = False

    def _settle(self, *, ok: bool, error: ProviderError | None) -> None:
        if self._settled:
            return
        self._settled = True
        endpoint = self._endpoint
        state = endpoint.state
        if self.probe:
            endpoint.probe_in_flight = False
            if state is CircuitState.HALF_OPEN:
                endpoint.replay(ok, error)
        elif state is CircuitState.CLOSED:
            # A call admitted while closed that ends after the circuit opened (or while a
            # probe decides) carries no news: only the probe may move a tripped circuit.
            endpoint.replay(ok, error)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.release()


class BreakerRegistry:
    """The circuits of every endpoint, created on first use."""

    def __init__(
        self,
        *,
        fail_max: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Clock = time.monotonic,
        observers: Iterable[TransitionObserver] = (),
    ) -> None:
        self.fail_max = fail_max
        self.reset_timeout_s = reset_timeout_s
        self.clock = clock
        self._observers = list(observers)
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}

    @classmethod
    def from_config(
        cls,
        policy: ResilienceConfig,
        *,
        clock: Clock = time.monotonic,
        observers: Iterable[TransitionObserver] = (),
    ) -> BreakerRegistry:
        return cls(
            fail_max=policy.breaker_fail_max,
            reset_timeout_s=policy.breaker_reset_timeout_s,
            clock=clock,
            observers=observers,
        )

    def add_observer(self, observer: TransitionObserver) -> None:
        self._observers.append(observer)

    def state(self, provider: str, model: str) -> CircuitState:
        """The circuit's state as last recorded (an open circuit whose cool-down has run
        stays OPEN until the next call moves it to HALF_OPEN)."""
        endpoint = self._endpoints.get((provider, model))
        return CircuitState.CLOSED if endpoint is None else endpoint.state

    def allows(self, provider: str, model: str) -> bool:
        """Whether a call would be let through now; changes nothing (used for planning)."""
        endpoint = self._endpoints.get((provider, model))
        if endpoint is None:
            return True
        state = endpoint.state
        if state is CircuitState.OPEN:
            return endpoint.cooled_down()
        if state is CircuitState.HALF_OPEN:
            return not endpoint.probe_in_flight
        return True

    def acquire(self, provider: str, model: str) -> Permit:
        """Leave for one call, or `CircuitOpen` when the circuit refuses it."""
        endpoint = self._endpoint(provider, model)
        state = endpoint.state
        if state is CircuitState.CLOSED:
            return Permit(endpoint, probe=False)
        if state is CircuitState.OPEN:
            if not endpoint.cooled_down():
                raise CircuitOpen(provider, model, state)
            endpoint.breaker.half_open()
        elif endpoint.probe_in_flight:
            raise CircuitOpen(provider, model, state)
        endpoint.probe_in_flight = True
        return Permit(endpoint, probe=True)

    def notify(self, transition: CircuitTransition) -> None:
        log.info(
            "circuit_state_changed",
            provider=transition.provider,
            model=transition.model,
            **{"from": transition.from_state.value, "to": transition.to_state.value},
        )
        for observer in self._observers:
            try:
                observer(transition)
            except Exception:
                # Observers run inside aiobreaker's state change: one that raised would
                # leave the circuit half-updated, so a faulty metrics hook is logged, not
                # allowed to break routing.
                log.exception("circuit_observer_failed", observer=repr(observer))

    def _endpoint(self, provider: str, model: str) -> _Endpoint:
        key = (provider, model)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint(self, provider, model)
        return endpoint
