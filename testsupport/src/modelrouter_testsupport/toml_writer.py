"""A TOML writer for what a router config holds (tables, strings, numbers, booleans,
arrays): the standard library reads TOML but does not write it."""

from __future__ import annotations

import re
from collections.abc import Mapping


def dump_toml(data: Mapping[str, object]) -> str:
    out: list[str] = []
    _dump_table(data, (), out)
    return "\n".join(out) + "\n"


def _dump_table(table: Mapping[str, object], path: tuple[str, ...], out: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        out.append(f"[{'.'.join(_key(p) for p in path)}]")
    for key, value in scalars.items():
        out.append(f"{_key(key)} = {_value(value)}")
    if scalars:
        out.append("")
    for key, value in tables.items():
        assert isinstance(value, Mapping)
        _dump_table(value, (*path, key), out)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
