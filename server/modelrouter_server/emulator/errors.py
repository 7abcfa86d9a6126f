"""The one error the emulator raises to refuse a request."""

from __future__ import annotations


class WireError(Exception):
    """A refusal as the provider would send it: status, error type, message, and for
    OpenAI the `param` and `code`. Each API renders it into its own error body."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{status} {type}: {message}")
        self.status = status
        self.type = type
        self.message = message
        self.param = param
        self.code = code
