"""Structured output: checking a reply against the request's `response_format`.

A JSON Schema library does the checking (every draft and keyword the caller may use),
not hand-written rules. The router checks every JSON reply whichever provider produced
it: OpenAI's strict mode only covers a subset of JSON Schema, and Claude (which gets the
schema as a forced tool) enforces nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from jsonschema import exceptions as schema_errors
from jsonschema.validators import validator_for

from modelrouter_server.domain import ResponseFormat, ResponseFormatType
from modelrouter_server.errors import RequestError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_response_format(fmt: ResponseFormat, tool_names: set[str]) -> None:
    """The format a caller sent is usable: a valid schema (an object at its top, since
    Claude receives it as a tool's input), a valid name that no tool uses."""
    if not fmt.is_json:
        if fmt.schema:
            raise RequestError(
                "response_format.schema", "only with RESPONSE_FORMAT_TYPE_JSON_SCHEMA"
            )
        return
    if not _NAME.fullmatch(fmt.name):
        raise RequestError("response_format.name", "1 to 64 letters, digits, '_' or '-'")
    if fmt.name in tool_names:
        raise RequestError("response_format.name", f"{fmt.name!r} is also a tool's name")
    if fmt.type is not ResponseFormatType.JSON_SCHEMA:
        return
    if not fmt.schema:
        raise RequestError(
            "response_format.schema", "required with RESPONSE_FORMAT_TYPE_JSON_SCHEMA"
        )
    if fmt.schema.get("type") != "object":
        raise RequestError("response_format.schema.type", 'must be "object"')
    validator = validator_for(fmt.schema)
    try:
        validator.check_schema(dict(fmt.schema))
    except schema_errors.SchemaError as exc:
        raise RequestError(
            "response_format.schema", f"not a valid JSON Schema: {exc.message}"
        ) from exc


def violation(fmt: ResponseFormat, text: str) -> str | None:
    """Why `text` does not satisfy `fmt`, naming the first violation; None when it does."""
    if not fmt.is_json:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"the reply is not JSON ({exc})"
    if not isinstance(value, dict):
        return "the reply is not a JSON object"
    schema = fmt.json_schema()
    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return None
    first = errors[0]
    return f"{first.json_path}: {first.message}"


def strict_allowed(schema: Mapping[str, object]) -> bool:
    """Whether OpenAI's strict mode takes `schema`: every object lists all its properties
    as required and forbids others (its documented rule)."""
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        if not isinstance(properties, Mapping):
            return False
        required = schema.get("required", [])
        if schema.get("additionalProperties") is not False:
            return False
        if not isinstance(required, list) or set(required) != set(properties):
            return False
        if not all(isinstance(p, Mapping) and strict_allowed(p) for p in properties.values()):
            return False
    items = schema.get("items")
    return not isinstance(items, Mapping) or strict_allowed(items)
