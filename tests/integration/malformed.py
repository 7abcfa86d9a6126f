"""Request bytes that are not a valid message of their type, for every ModelRouterService RPC."""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from modelrouter.v1 import modelrouter_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ModelRouterService"]
METHODS: tuple[MethodDescriptor, ...] = tuple(SERVICE.methods)

ISSUE_BYTES = bytes.fromhex("0a0708021203fffefd")
"""From the hardening issue: GenerateRequest.messages[0] whose content is not UTF-8."""

_STRUCTURAL = {
    "truncated": bytes.fromhex("0a056162"),  # field 1, 5 bytes long, 2 bytes sent
    "wire type 7": b"\x0f",  # no such wire type
    "deep groups": b"\x0b" * 5000 + b"\x0c" * 5000,  # past the decoder's nesting limit
    "unterminated group": b"\x0b\x0b\x0b",
}
_BAD_TEXT = {
    "invalid UTF-8": b"\xff\xfe\xfd",
    "lone surrogate": "\ud800".encode("utf-8", "surrogatepass"),
}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _string_path(descriptor: Descriptor) -> list[FieldDescriptor] | None:
    """A path to a string field: a top-level one, else one inside a message field."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return [field]
    for field in descriptor.fields:
        message = field.message_type
        if message is not None and not message.GetOptions().map_entry:
            inner = _string_path(message)
            if inner is not None:
                return [field, *inner]
    return None


def _in_string(path: list[FieldDescriptor], text: bytes) -> bytes:
    data = text
    for field in reversed(path):
        data = _len_field(field.number, data)
    return data


def malformed(method: MethodDescriptor) -> dict[str, bytes]:
    """Labelled payloads that do not decode as `method`'s request type."""
    cases = dict(_STRUCTURAL)
    path = _string_path(method.input_type)
    if path is not None:
        where = ".".join(f.name for f in path)
        for label, text in _BAD_TEXT.items():
            cases[f"{label} in {where}"] = _in_string(path, text)
    if method.name == "Generate":
        cases["issue bytes"] = ISSUE_BYTES
    return cases
