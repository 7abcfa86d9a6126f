"""Providers: one module per API over its official SDK, behind `Provider`."""

from modelrouter_server.providers.base import Provider

__all__ = ["Provider"]
