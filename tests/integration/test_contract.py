"""The contract's one deliberate duplication stays exact: GenerateStreamRequest carries
GenerateRequest's fields (the server converts both with one function, and callers reuse a
request body for either RPC)."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from modelrouter_client import pb


def _shape(field: FieldDescriptor) -> tuple[object, ...]:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        # A map's entry type is named after its message; compare what it holds.
        kind: object = ("map", *(_shape(f) for f in message.fields))
    else:
        kind = message.full_name if message is not None else None
    enum = field.enum_type.full_name if field.enum_type else None
    repeated = getattr(field, "is_repeated", None)
    return (field.name, field.json_name, field.type, repeated, kind, enum, field.has_presence)


def test_stream_request_has_exactly_the_generate_request_fields() -> None:
    plain = {f.number: _shape(f) for f in pb.GenerateRequest.DESCRIPTOR.fields}
    stream = {f.number: _shape(f) for f in pb.GenerateStreamRequest.DESCRIPTOR.fields}
    assert stream == plain
    assert len(plain) >= 13


def test_every_rpc_has_its_own_request_and_response_type() -> None:
    service = pb.DESCRIPTOR.services_by_name["ModelRouterService"]
    inputs = [m.input_type.full_name for m in service.methods]
    outputs = [m.output_type.full_name for m in service.methods]
    assert len(set(inputs)) == len(inputs)
    assert len(set(outputs)) == len(outputs)
    for method in service.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"
