"""A wire-compatible emulator of the Anthropic Messages and OpenAI Chat Completions APIs.

It serves real HTTP and SSE so that the official, unmodified SDKs can talk to it: the
service's offline default when no provider key is set, and what every test and benchmark
runs against. Tests script it with `Behavior`s (latency, errors, mid-stream faults) and
assert on its `requests` and `disconnects` records (a bounded ring of the latest), awaiting
its events rather than polling them.
"""

from modelrouter_server.emulator.app import Emulator
from modelrouter_server.emulator.behavior import Behavior
from modelrouter_server.emulator.exchange import DEFAULT_MAX_RECORDS
from modelrouter_server.emulator.models import DEFAULT_MODELS, EmulatedModel
from modelrouter_server.emulator.records import DisconnectRecord, RequestRecord

__all__ = [
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MODELS",
    "Behavior",
    "DisconnectRecord",
    "EmulatedModel",
    "Emulator",
    "RequestRecord",
]
