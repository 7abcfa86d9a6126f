"""Bad input gets a clear status naming the field, never UNKNOWN, and the server stays up."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from modelrouter_client import AsyncModelRouterClient, assistant, pb, system, user

from .status_details import details_of


def _field_violation(error: grpc.aio.AioRpcError) -> str:
    (bad,) = details_of(error, error_details_pb2.BadRequest)
    field: str = bad.field_violations[0].field
    return field


CASES = [
    ("empty messages", pb.GenerateRequest(), grpc.StatusCode.INVALID_ARGUMENT, "messages"),
    (
        "role unset",
        pb.GenerateRequest(messages=[pb.Message(content="hi")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[0].role",
    ),
    (
        "empty content",
        pb.GenerateRequest(messages=[user(" ")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[0].content",
    ),
    (
        "assistant first",
        pb.GenerateRequest(messages=[assistant("hi"), user("yo")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[0].role",
    ),
    (
        "two user turns in a row",
        pb.GenerateRequest(messages=[user("a"), user("b")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[1].role",
    ),
    (
        "system after a turn",
        pb.GenerateRequest(messages=[user("a"), system("b")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages[1].role",
    ),
    (
        "ends with assistant",
        pb.GenerateRequest(messages=[user("a"), assistant("b")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages",
    ),
    (
        "unknown model",
        pb.GenerateRequest(messages=[user("a")], model="gpt-9"),
        grpc.StatusCode.NOT_FOUND,
        "model",
    ),
    (
        "negative max_output_tokens",
        pb.GenerateRequest(messages=[user("a")], max_output_tokens=-1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_output_tokens",
    ),
    (
        "max_output_tokens over the model's cap",
        pb.GenerateRequest(messages=[user("a")], model="gpt-4o-mini", max_output_tokens=20_000),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_output_tokens",
    ),
    (
        "thinking budget below the minimum",
        pb.GenerateRequest(messages=[user("a")], model="sonnet", thinking_budget_tokens=100),
        grpc.StatusCode.INVALID_ARGUMENT,
        "thinking_budget_tokens",
    ),
    (
        "thinking budget not below max_output_tokens",
        pb.GenerateRequest(
            messages=[user("a")],
            model="sonnet",
            max_output_tokens=2000,
            thinking_budget_tokens=2000,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "thinking_budget_tokens",
    ),
    (
        "thinking on a model without it",
        pb.GenerateRequest(messages=[user("a")], model="gpt-4o-mini", thinking_budget_tokens=2048),
        grpc.StatusCode.INVALID_ARGUMENT,
        "thinking_budget_tokens",
    ),
    (
        "temperature out of range",
        pb.GenerateRequest(messages=[user("a")], temperature=3.0),
        grpc.StatusCode.INVALID_ARGUMENT,
        "temperature",
    ),
    (
        "too many stop sequences",
        pb.GenerateRequest(messages=[user("a")], stop=["a", "b", "c", "d", "e"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "stop",
    ),
]


@pytest.mark.parametrize(
    ("request_", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_generate_request_names_the_field(
    router: AsyncModelRouterClient,
    request_: pb.GenerateRequest,
    code: grpc.StatusCode,
    field: str,
) -> None:
    stub = router._stub
    failures: list[grpc.aio.AioRpcError] = []
    try:
        await stub.Generate(request_, timeout=10)
    except grpc.aio.AioRpcError as error:
        failures.append(error)
    try:
        stream_request = pb.GenerateStreamRequest.FromString(request_.SerializeToString())
        async for _ in stub.GenerateStream(stream_request, timeout=10):
            pass
    except grpc.aio.AioRpcError as error:
        failures.append(error)
    assert len(failures) == 2, "both RPCs must refuse the request"
    for failure in failures:
        assert failure.code() == code
        assert field in (failure.details() or "")
        assert _field_violation(failure) == field
    # The server is still up and serving.
    assert (await router.generate("still there?")).text


async def test_unknown_conversation_is_not_found(router: AsyncModelRouterClient) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.generate("hi", conversation_id="no-such-conversation")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "conversation_id" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await router.get_conversation("no-such-conversation")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
