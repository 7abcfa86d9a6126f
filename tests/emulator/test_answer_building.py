"""The pure pieces behind the answers: token splitting, limits, counting, behavior scripts."""

from __future__ import annotations

import pytest
from modelrouter_server.emulator import Behavior, EmulatedModel
from modelrouter_server.emulator._tokens import o200k
from modelrouter_server.emulator.behavior import BehaviorScript, behavior_from_mapping
from modelrouter_server.emulator.counting import claude_input_tokens, openai_prompt_tokens
from modelrouter_server.emulator.text import limit_answer, split_tokens


def test_split_tokens_keeps_each_words_leading_whitespace() -> None:
    assert split_tokens("Hello big\n world ") == ["Hello", " big", "\n world", " "]
    assert "".join(split_tokens(" a  b\tc")) == " a  b\tc"


def test_limit_answer_prefers_the_earliest_stop() -> None:
    tokens = split_tokens(" one two three four five")

    capped = limit_answer(tokens, 2, ["four"])
    stopped = limit_answer(tokens, 10, ["four", "thr"])

    assert (capped.text, capped.stop) == (" one two", "max_tokens")
    assert (stopped.text, stopped.stop, stopped.stop_sequence) == (
        " one two ",
        "stop_sequence",
        "thr",
    )
    assert limit_answer(tokens, 10, []).stop == "end"


def test_o200k_loads_offline_and_counts_like_tiktoken() -> None:
    encoding = o200k()

    assert encoding.name == "o200k_base"
    assert encoding.decode(encoding.encode("Hello, world")) == "Hello, world"
    assert len(encoding.encode("Hello, world")) == 3
    assert o200k() is encoding


def test_openai_prompt_count_follows_the_cookbook() -> None:
    # 3 priming + per message 3 + role + content (+1 and the tokens of a name).
    assert openai_prompt_tokens([{"role": "user", "content": "Hello, world"}]) == 3 + 3 + 1 + 3
    named = [{"role": "user", "name": "bob", "content": "Hello, world"}]
    assert openai_prompt_tokens(named) == 3 + 3 + 1 + 3 + 1 + 1
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello, world"}]}]
    assert openai_prompt_tokens(parts) == 10


def test_claude_count_is_bytes_over_three_and_a_half_plus_three_per_message() -> None:
    assert claude_input_tokens("", ["Hello, world"]) == 4 + 3
    assert claude_input_tokens("Be brief.", ["é" * 7]) == 3 + 4 + 3


def test_behavior_script_prefers_queues_then_defaults() -> None:
    script = BehaviorScript()
    fallback, default, queued_any, queued = (Behavior(output_tokens=n) for n in (1, 2, 3, 4))
    script.set_default("*", fallback)
    script.set_default("m", default)
    script.enqueue("*", (queued_any,))
    script.enqueue("m", (queued,))

    assert [script.take("m") for _ in range(3)] == [queued, queued_any, default]
    assert script.take("other") == fallback
    script.clear()
    assert script.take("m") == Behavior()


def test_behavior_from_mapping_converts_and_checks_types() -> None:
    behavior = behavior_from_mapping({"latency_s": 1, "error_status": 429, "text": "hi"})

    assert behavior == Behavior(latency_s=1.0, error_status=429, text="hi")
    with pytest.raises(ValueError, match="unknown behavior fields: nope"):
        behavior_from_mapping({"nope": 1})
    with pytest.raises(ValueError, match="must not be null"):
        behavior_from_mapping({"output_tokens": None})


@pytest.mark.parametrize(
    "fields",
    [{"latency_s": -1.0}, {"error_status": 200}, {"error_rate": 1.5}, {"output_tokens": -1}],
)
def test_behavior_rejects_impossible_values(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Behavior(**fields)  # type: ignore[arg-type]  # each case sets one valid field name


def test_model_flags_must_match_the_api() -> None:
    with pytest.raises(ValueError):
        EmulatedModel("x", "anthropic", 1000, 100, reasoning=True)
    with pytest.raises(ValueError):
        EmulatedModel("x", "openai", 1000, 100, thinking=True)
