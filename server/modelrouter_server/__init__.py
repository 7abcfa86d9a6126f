"""modelrouter server: gRPC model routing over the official provider SDKs."""

__all__: list[str] = []
