"""Schema-valid JSON for structured output: what an emulated model answers when a
request forces a tool or asks for a JSON response format, and no answer is scripted.

Covers the JSON Schema a model is usually given (objects, arrays, scalars, enum, const,
bounds, anyOf/oneOf); every property of an object is filled, which satisfies `required`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping

from modelrouter_server.emulator.text import WORDS


def seeded_rng(body: Mapping[str, object]) -> random.Random:
    """The same request gets the same answer."""
    key = json.dumps(body.get("messages"), sort_keys=True, default=str).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def instance(schema: object, rng: random.Random, depth: int = 0) -> object:
    """A value valid against `schema`."""
    if not isinstance(schema, Mapping) or depth > 8:
        return rng.choice(WORDS)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return instance(options[0], rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {name: instance(sub, rng, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(_int(schema.get("minItems"), 1), 1)
        return [instance(schema.get("items", {}), rng, depth + 1) for _ in range(count)]
    if kind == "integer":
        low = _int(schema.get("minimum"), 0)
        return rng.randint(low, _int(schema.get("maximum"), low + 100))
    if kind == "number":
        bottom = _int(schema.get("minimum"), 0)
        return round(rng.uniform(bottom, _int(schema.get("maximum"), bottom + 100)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    word = rng.choice(WORDS)
    return word * max(1, -(-_int(schema.get("minLength"), 1) // len(word)))


def _int(value: object, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def json_text(schema: object, rng: random.Random) -> str:
    return json.dumps(instance(schema, rng))
