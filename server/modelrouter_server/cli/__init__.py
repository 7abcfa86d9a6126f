"""The `modelrouter` console command: `serve` runs the router; `chat`, `generate`,
`models` and `count-tokens` are a terminal client over `modelrouter_client`."""

from modelrouter_server.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
