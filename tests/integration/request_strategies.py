"""Hypothesis strategies for every request message, built from the proto descriptors, and
byte-level mutations of serialized requests.

Generated from the descriptors rather than written by hand, so a field added to a request
is fuzzed without anyone remembering to. Values lean to the edges the router must check:
empty and whitespace strings, unknown enum numbers, negative and huge integers, NaN and
infinities, long repeated fields (bounded, so a case stays fast).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from modelrouter.v1 import modelrouter_pb2 as pb

_INT32 = st.one_of(
    st.integers(-3, 70_000), st.sampled_from([-(2**31), 2**31 - 1, 128_000, 1_000_000])
)
_INT64 = st.one_of(_INT32, st.sampled_from([-(2**63), 2**63 - 1, 10**30 % 2**63]))
_FLOAT = st.one_of(
    st.floats(-3.0, 3.0),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e30]),
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "\n\t", "gpt-4o-mini", "sonnet", "o3-mini", "\x00", "é" * 300, "9" * 30, "-1"]
    ),
)
_MAX_DEPTH = 2


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
        return message_strategy(field.message_type, depth + 1)
    if kind == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return _FLOAT
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return _INT32
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return _INT64


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


_JSON_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
_STRUCT = st.dictionaries(
    st.text(max_size=8),
    st.one_of(_JSON_SCALAR, st.lists(_JSON_SCALAR, max_size=3)),
    max_size=4,
).map(_struct)


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of `descriptor`'s type with any subset of their fields set."""
    if descriptor.full_name == "google.protobuf.Struct":
        return _STRUCT
    cls: type[Message] = getattr(pb, descriptor.name)
    if depth > _MAX_DEPTH:
        return st.just(cls())
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            key, value = message.fields_by_name["key"], message.fields_by_name["value"]
            parts[field.name] = st.dictionaries(
                _field(key, depth), _field(value, depth), max_size=5
            )
        elif field.is_repeated:
            parts[field.name] = st.lists(_field(field, depth), max_size=6)
        else:
            parts[field.name] = _field(field, depth)

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        present = draw(st.sets(st.sampled_from(sorted(parts)))) if parts else set()
        values = {name: draw(parts[name]) for name in sorted(present)}
        return cls(**values)

    return build()


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with bytes flipped, inserted, deleted, or cut short."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
            at = draw(st.integers(0, len(out)))
            if op == "flip" and out:
                at = min(at, len(out) - 1)
                out[at] ^= draw(st.integers(1, 255))
            elif op == "insert":
                out[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete" and out:
                del out[at : at + draw(st.integers(1, 4))]
            elif op == "truncate":
                del out[at:]
            else:
                out[at:at] = draw(st.sampled_from([b"\x0b" * 64, b"\xff" * 10, b"\x0a\xff\x01"]))
        return bytes(out)

    return mutate()
