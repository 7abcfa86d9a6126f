"""`modelrouter generate --tools FILE --schema FILE` against `modelrouter serve`: tool
calls printed as JSON lines, structured output validated, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

from modelrouter_testsupport import emulator_admin
from modelrouter_testsupport.router_process import RouterProcess

from .test_commands import modelrouter

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def test_tool_calls_are_printed_as_json_lines(
    router: RouterProcess, emulator_url: str, tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER]))
    emulator_admin.set_behavior(
        emulator_url,
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    )

    result = modelrouter("generate", "--target", router.target, "--tools", str(tools), "Weather?")

    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    call = json.loads(line)
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Oslo"}
    assert call["id"].startswith("call_")
    body = emulator_admin.requests(emulator_url)[-1]["body"]
    assert isinstance(body, dict) and body["tools"][0]["function"]["name"] == "get_weather"


def test_schema_asks_for_json_valid_against_it(
    router: RouterProcess, emulator_url: str, tmp_path: Path
) -> None:
    schema = tmp_path / "city.json"
    schema.write_text(json.dumps(CITY))

    result = modelrouter(
        "generate", "--target", router.target, "--stream", "--schema", str(schema), "Paris?"
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert isinstance(answer["city"], str) and isinstance(answer["population"], int)


def test_a_bad_tools_file_is_refused_naming_it(router: RouterProcess, tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text('{"name": "not a list"}')

    result = modelrouter("generate", "--target", router.target, "--tools", str(tools), "Hi")

    assert result.returncode == 2
    assert f"--tools {tools}: expected a JSON list" in result.stderr
