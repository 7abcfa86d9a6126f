"""Reading and validating the config file."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from modelrouter_server.config.schema import RouterConfig


class ConfigError(Exception):
    """The config file is unreadable or invalid; the message names each bad path."""


def default_config_path() -> Path:
    return Path(str(resources.files("modelrouter_server.config").joinpath("default.toml")))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def load_config(path: Path | None = None) -> RouterConfig:
    source = path or default_config_path()
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return RouterConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(p for p in err["loc"] if p not in ("function-after",))
            lines.append(f"{_path(loc)}: {err['msg']}")
        raise ConfigError(f"{source}: invalid config:\n  " + "\n  ".join(lines)) from exc
