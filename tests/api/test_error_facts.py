"""Every error class has its own row of facts, and the status details read from it."""

from __future__ import annotations

import importlib
import pkgutil

import grpc
import modelrouter_server
import pytest
from modelrouter_server import errors
from modelrouter_server.api.status import to_status
from modelrouter_server.attempts import AttemptRecord, NoCandidates, Outcome
from modelrouter_server.error_facts import FACTS, facts_for
from modelrouter_server.errors import RouterError


def _every_subclass(cls: type[RouterError]) -> set[type[RouterError]]:
    found: set[type[RouterError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_every_subclass(sub)}
    return found


def _import_every_server_module() -> None:
    # A RouterError subclass may be defined anywhere in the server; import it all so
    # `__subclasses__` sees it.
    for module in pkgutil.walk_packages(modelrouter_server.__path__, "modelrouter_server."):
        if not module.name.endswith("__main__"):  # running, not defining
            importlib.import_module(module.name)


def test_every_router_error_subclass_has_its_own_row() -> None:
    _import_every_server_module()
    classes = {RouterError} | {
        c for c in _every_subclass(RouterError) if c.__module__.startswith("modelrouter_server")
    }
    missing = sorted(c.__qualname__ for c in classes if c not in FACTS)
    assert not missing, f"add a row to errors.FACTS for: {', '.join(missing)}"
    assert len(classes) >= 18  # the walk found the hierarchy, not nothing


def test_reasons_are_unique_upper_snake_case() -> None:
    reasons = [f.reason for f in FACTS.values()]
    assert len(set(reasons)) == len(reasons)
    assert all(r.replace("_", "").isalpha() and r == r.upper() for r in reasons)


def test_nothing_maps_to_unknown_or_ok() -> None:
    codes = {f.status for f in FACTS.values()}
    assert not codes & {grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK}


def test_only_provider_health_failures_are_retryable() -> None:
    retryable = {cls.__name__ for cls, f in FACTS.items() if f.retryable}
    assert retryable == {
        "RateLimited",
        "Overloaded",
        "ServerError",
        "ProviderTimeout",
        "ProviderConnectionError",
        "StreamInterrupted",
    }


def test_instances_refine_their_row() -> None:
    quota = errors.RateLimited("no credit", quota_exhausted=True)
    assert not facts_for(quota).retryable
    assert facts_for(quota).phrase == "quota exhausted"
    assert facts_for(errors.RateLimited("slow down")).retryable
    cut = errors.StreamInterrupted("cut", kind=errors.InterruptionKind.STALLED)
    assert facts_for(cut).phrase == "stream interrupted (stalled)"
    limited = AttemptRecord("m", "p", Outcome.ERROR, error_class=errors.RateLimited)
    broken = AttemptRecord("m", "p", Outcome.ERROR, error_class=errors.ServerError)
    limited_only = NoCandidates("x", [limited])
    assert facts_for(limited_only).status is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert facts_for(NoCandidates("x", [limited, broken])).status is grpc.StatusCode.UNAVAILABLE


class _DefinedElsewhere(errors.ModelNotFound):
    pass


def test_a_class_without_a_row_falls_back_to_its_parent_at_run_time() -> None:
    assert facts_for(_DefinedElsewhere("model", "x")).status is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("error", [ValueError("boom"), KeyError("secret-ish")])
def test_a_bug_is_internal_and_says_nothing(error: Exception) -> None:
    assert facts_for(error).status is grpc.StatusCode.INTERNAL
    assert facts_for(error).log_level == "error"
    status = to_status(error)
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert status.message == "internal error"


def test_status_details_carry_the_reason_from_the_table() -> None:
    from google.rpc import error_details_pb2

    status = to_status(errors.ModelNotFound("model", "no model 'x'"))
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert [i.reason for i in infos] == ["MODEL_NOT_FOUND"]
