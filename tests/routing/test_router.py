"""Router: route choice, the explicit model, per-candidate settings and every filter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from modelrouter_server.attempts import NoCandidates, Outcome
from modelrouter_server.config.loader import ConfigError, default_config_path, load_config
from modelrouter_server.config.schema import RouterConfig
from modelrouter_server.domain import GenerateOptions, Message, ReasoningEffort, Role, Task
from modelrouter_server.errors import ModelNotFound, RequestError, ServerError
from modelrouter_server.resilience import BreakerRegistry
from modelrouter_server.routing import REASONING_THINKING_BUDGET, Router

MESSAGES = (Message(Role.USER, "hello"),)


def config() -> RouterConfig:
    return RouterConfig.model_validate(
        {
            "providers": {"alpha": {"kind": "openai"}, "beta": {"kind": "anthropic"}},
            "models": {
                "small": {
                    "provider": "alpha",
                    "context_window": 1000,
                    "max_output_tokens": 200,
                    "default_output_tokens": 300,
                    "aliases": ["s"],
                    "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
                },
                "big": {
                    "provider": "alpha",
                    "context_window": 8000,
                    "max_output_tokens": 4000,
                    "default_output_tokens": 500,
                    "pricing": {"input_per_mtok": 100.0, "output_per_mtok": 200.0},
                },
                "thinker": {
                    "provider": "beta",
                    "context_window": 16000,
                    "max_output_tokens": 8000,
                    "default_output_tokens": 1000,
                    "capabilities": {"thinking": True},
                },
                "reasoner": {
                    "provider": "alpha",
                    "context_window": 16000,
                    "max_output_tokens": 8000,
                    "capabilities": {"reasoning_effort": True, "temperature": False},
                },
            },
            "routing": {
                "default": ["small", "big"],
                "tasks": {"reasoning": ["reasoner", "thinker", "small"], "code": ["big"]},
            },
            "context": {"summarizer_model": "small"},
        }
    )


def tokens(n: int) -> Callable[[str], int]:
    return lambda _model: n


def plan_ids(router: Router, prompt: int = 10, **kwargs: Any) -> list[str]:
    plan = router.plan(GenerateOptions(messages=MESSAGES, **kwargs), prompt_tokens=tokens(prompt))
    return [c.model_id for c in plan.candidates]


@pytest.fixture
def router() -> Router:
    return Router(config(), BreakerRegistry().allows)


def test_unspecified_task_uses_the_default_route(router: Router) -> None:
    assert plan_ids(router) == ["small", "big"]


def test_task_route_is_used(router: Router) -> None:
    assert plan_ids(router, task=Task.CODE) == ["big"]


def test_task_without_a_route_falls_back_to_the_default(router: Router) -> None:
    assert plan_ids(router, task=Task.SUMMARIZE) == ["small", "big"]


def test_explicit_model_goes_first_by_alias_then_the_route(router: Router) -> None:
    assert plan_ids(router, model="s", task=Task.CODE) == ["small", "big"]
    assert plan_ids(router, model="big") == ["big", "small"]


def test_disable_fallback_leaves_one_candidate(router: Router) -> None:
    assert plan_ids(router, model="big", disable_fallback=True) == ["big"]
    assert plan_ids(router, disable_fallback=True) == ["small"]


def test_unknown_model_is_model_not_found_on_the_model_field(router: Router) -> None:
    with pytest.raises(ModelNotFound) as err:
        plan_ids(router, model="gpt-9")
    assert err.value.field == "model"
    assert "gpt-9" in err.value.message


def test_output_defaults_to_the_models_default_capped_by_its_limit(router: Router) -> None:
    plan = router.plan(GenerateOptions(messages=MESSAGES), prompt_tokens=tokens(10))
    assert [c.max_output_tokens for c in plan.candidates] == [200, 500]


def test_explicit_output_above_the_cap_is_a_request_error(router: Router) -> None:
    with pytest.raises(RequestError) as err:
        plan_ids(router, model="small", max_output_tokens=201)
    assert err.value.field == "max_output_tokens"


def test_fallback_output_above_the_cap_is_clamped(router: Router) -> None:
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, model="big", max_output_tokens=1000),
        prompt_tokens=tokens(10),
    )
    assert [(c.model_id, c.max_output_tokens) for c in plan.candidates] == [
        ("big", 1000),
        ("small", 200),
    ]


@pytest.mark.parametrize(
    ("budget", "max_output"), [(1023, 0), (4000, 4000), (5000, 4000)], ids=["low", "eq", "above"]
)
def test_invalid_thinking_budget_on_the_explicit_model_is_a_request_error(
    router: Router, budget: int, max_output: int
) -> None:
    with pytest.raises(RequestError) as err:
        plan_ids(
            router, model="thinker", thinking_budget_tokens=budget, max_output_tokens=max_output
        )
    assert err.value.field == "thinking_budget_tokens"


def test_thinking_budget_on_a_non_thinking_explicit_model_is_a_request_error(
    router: Router,
) -> None:
    with pytest.raises(RequestError) as err:
        plan_ids(router, model="small", thinking_budget_tokens=2000)
    assert err.value.field == "thinking_budget_tokens"


def test_thinking_budget_skips_non_thinking_fallbacks(router: Router) -> None:
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, task=Task.REASONING, thinking_budget_tokens=3000),
        prompt_tokens=tokens(10),
    )
    assert [c.model_id for c in plan.candidates] == ["thinker"]
    thinker = plan.candidates[0]
    assert thinker.thinking_budget_tokens == 3000
    assert thinker.max_output_tokens > 3000
    assert [(s.model, s.outcome) for s in plan.skipped] == [
        ("reasoner", Outcome.SKIPPED_CAPABILITY),
        ("small", Outcome.SKIPPED_CAPABILITY),
    ]


def test_reasoning_effort_on_a_model_without_it(router: Router) -> None:
    with pytest.raises(RequestError) as err:
        plan_ids(router, model="small", reasoning_effort=ReasoningEffort.HIGH)
    assert err.value.field == "reasoning_effort"
    assert plan_ids(router, task=Task.REASONING, reasoning_effort=ReasoningEffort.HIGH) == [
        "reasoner"
    ]


def test_reasoning_task_turns_thinking_on_for_thinking_models(router: Router) -> None:
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, task=Task.REASONING), prompt_tokens=tokens(10)
    )
    by_id = {c.model_id: c for c in plan.candidates}
    assert by_id["thinker"].thinking_budget_tokens == REASONING_THINKING_BUDGET
    assert by_id["thinker"].max_output_tokens > REASONING_THINKING_BUDGET
    assert by_id["reasoner"].thinking_budget_tokens is None
    assert by_id["small"].thinking_budget_tokens is None


def test_reasoning_task_keeps_a_short_answer_short(router: Router) -> None:
    plan = router.plan(
        GenerateOptions(
            messages=MESSAGES, task=Task.REASONING, model="thinker", max_output_tokens=1500
        ),
        prompt_tokens=tokens(10),
    )
    assert plan.candidates[0].thinking_budget_tokens is None
    assert plan.candidates[0].max_output_tokens == 1500


def test_temperature_is_dropped_where_unsupported_or_thinking(router: Router) -> None:
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, task=Task.REASONING, temperature=0.3),
        prompt_tokens=tokens(10),
    )
    assert {c.model_id: c.temperature for c in plan.candidates} == {
        "reasoner": None,
        "thinker": None,
        "small": 0.3,
    }


def test_window_that_cannot_hold_prompt_and_output_is_skipped(router: Router) -> None:
    plan = router.plan(GenerateOptions(messages=MESSAGES), prompt_tokens=tokens(900))
    assert [c.model_id for c in plan.candidates] == ["big"]
    (skip,) = plan.skipped
    assert skip.model == "small" and skip.outcome is Outcome.SKIPPED_CONTEXT_WINDOW
    assert "1000" in skip.error


def test_window_filter_allows_what_context_management_can_shrink(router: Router) -> None:
    opts = GenerateOptions(messages=MESSAGES)
    plan = router.plan(opts, prompt_tokens=tokens(900), min_prompt_tokens=tokens(300))
    assert [c.model_id for c in plan.candidates] == ["small", "big"]
    plan = router.plan(opts, prompt_tokens=tokens(900), min_prompt_tokens=tokens(850))
    assert [c.model_id for c in plan.candidates] == ["big"]


def test_prompt_is_counted_per_model(router: Router) -> None:
    counts = {"small": 950, "big": 10}
    plan = router.plan(GenerateOptions(messages=MESSAGES), prompt_tokens=counts.__getitem__)
    assert [c.model_id for c in plan.candidates] == ["big"]


def test_cost_cap_skips_expensive_models(router: Router) -> None:
    # small: (100 * 1 + 200 * 2) / 1e6 = $0.0005; big: (100*100 + 500*200) / 1e6 = $0.11
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, max_cost_usd=0.01), prompt_tokens=tokens(100)
    )
    assert [c.model_id for c in plan.candidates] == ["small"]
    assert [(s.model, s.outcome) for s in plan.skipped] == [("big", Outcome.SKIPPED_COST)]


def test_open_circuit_is_skipped() -> None:
    breakers = BreakerRegistry(fail_max=1, reset_timeout_s=60.0)
    with breakers.acquire("alpha", "small") as permit:
        permit.failure(ServerError("down", status_code=500))
    router = Router(config(), breakers.allows)
    plan = router.plan(GenerateOptions(messages=MESSAGES), prompt_tokens=tokens(10))
    assert [c.model_id for c in plan.candidates] == ["big"]
    assert [(s.model, s.outcome) for s in plan.skipped] == [("small", Outcome.SKIPPED_CIRCUIT_OPEN)]


def test_nothing_left_is_no_candidates_with_every_reason(router: Router) -> None:
    with pytest.raises(NoCandidates) as err:
        router.plan(GenerateOptions(messages=MESSAGES), prompt_tokens=tokens(100_000))
    assert [a.outcome for a in err.value.attempts] == [Outcome.SKIPPED_CONTEXT_WINDOW] * 2
    assert "small" in err.value.message and "big" in err.value.message
    assert not err.value.all_rate_limited


def test_default_config_reasoning_route_thinks_on_claude(tmp_path: Path) -> None:
    cfg = load_config(None)
    router = Router(cfg, BreakerRegistry().allows)
    plan = router.plan(
        GenerateOptions(messages=MESSAGES, task=Task.REASONING), prompt_tokens=tokens(10)
    )
    claude = next(c for c in plan.candidates if c.model_id.startswith("claude-3-7-sonnet"))
    assert claude.thinking_budget_tokens == REASONING_THINKING_BUDGET
    assert claude.max_output_tokens > REASONING_THINKING_BUDGET
    o3 = next(c for c in plan.candidates if c.model_id.startswith("o3-mini"))
    assert o3.temperature is None and o3.thinking_budget_tokens is None


def _with_refusal_fallback(routes: list[str]) -> RouterConfig:
    raw = config().model_dump(mode="json")
    raw["routing"]["refusal_fallback"] = routes
    return RouterConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("routes", "task", "expected"),
    [
        ([], Task.REASONING, False),
        (["reasoning"], Task.REASONING, True),
        (["reasoning"], Task.CODE, False),
        # A task without a route of its own uses the default route, and its setting.
        (["default"], Task.CHAT, True),
        (["default"], Task.UNSPECIFIED, True),
        (["default"], Task.CODE, False),
    ],
)
def test_refusal_fallback_is_a_setting_of_the_route_that_serves_the_task(
    routes: list[str], task: Task, expected: bool
) -> None:
    router = Router(_with_refusal_fallback(routes), BreakerRegistry().allows)
    plan = router.plan(GenerateOptions(messages=MESSAGES, task=task), prompt_tokens=tokens(10))
    assert plan.refusal_fallback is expected


def test_refusal_fallback_names_an_unknown_route_by_its_config_path(tmp_path: Path) -> None:
    source = tmp_path / "bad.toml"
    text = default_config_path().read_text()
    assert "\nrefusal_fallback = []\n" in text
    source.write_text(
        text.replace("\nrefusal_fallback = []\n", '\nrefusal_fallback = ["chat", "poetry"]\n')
    )
    expected = r"routing\.refusal_fallback\[1\]: Input should be .default."
    with pytest.raises(ConfigError, match=expected):
        load_config(source)
