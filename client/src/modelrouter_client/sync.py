"""The blocking client, for scripts and agents without an event loop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Unpack

from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc

from modelrouter_client._request import (
    GenerateOptions,
    as_messages,
    generate_request,
    generate_stream_request,
)
from modelrouter_client.connect import TlsFiles, sync_channel
from modelrouter_client.errors import typed_errors


class ModelRouterClient:
    """A blocking modelrouter client; the same calls, options and typed errors as
    `AsyncModelRouterClient`."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        default_timeout: float | None = 300.0,
        tls: TlsFiles | None = None,
        api_key: str | None = None,
    ) -> None:
        self._channel = sync_channel(target, tls=tls, api_key=api_key)
        self._stub = pb_grpc.ModelRouterServiceStub(self._channel)
        self._default_timeout = default_timeout

    def __enter__(self) -> ModelRouterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _timeout(self, timeout: float | None) -> float | None:
        return self._default_timeout if timeout is None else timeout

    def generate(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        timeout: float | None = None,
        **options: Unpack[GenerateOptions],
    ) -> pb.GenerateResponse:
        request = generate_request(messages, **options)
        with typed_errors():
            response: pb.GenerateResponse = self._stub.Generate(
                request, timeout=self._timeout(timeout)
            )
        return response

    def stream(
        self,
        messages: Sequence[pb.Message] | str,
        *,
        timeout: float | None = None,
        **options: Unpack[GenerateOptions],
    ) -> Iterator[pb.GenerateStreamResponse]:
        """Events as they arrive; closing the iterator cancels the RPC."""
        request = generate_stream_request(messages, **options)
        call = self._stub.GenerateStream(request, timeout=self._timeout(timeout))
        try:
            with typed_errors():
                yield from call
        finally:
            call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it unannotated

    def count_tokens(
        self, messages: Sequence[pb.Message] | str, *, model: str = ""
    ) -> pb.CountTokensResponse:
        with typed_errors():
            response: pb.CountTokensResponse = self._stub.CountTokens(
                pb.CountTokensRequest(messages=as_messages(messages), model=model),
                timeout=self._timeout(None),
            )
        return response

    def list_models(self) -> list[pb.ModelInfo]:
        with typed_errors():
            response: pb.ListModelsResponse = self._stub.ListModels(
                pb.ListModelsRequest(), timeout=self._timeout(None)
            )
        return list(response.models)

    def get_usage(self) -> pb.GetUsageResponse:
        """The calling tenant's usage and limits."""
        with typed_errors():
            response: pb.GetUsageResponse = self._stub.GetUsage(
                pb.GetUsageRequest(), timeout=self._timeout(None)
            )
        return response
