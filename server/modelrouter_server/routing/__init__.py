"""Routing: the candidate models for a request, in order, filtered before any call."""

from modelrouter_server.routing.fitting import REASONING_THINKING_BUDGET
from modelrouter_server.routing.router import Availability, Router, TokenCount

__all__ = [
    "REASONING_THINKING_BUDGET",
    "Availability",
    "Router",
    "TokenCount",
]
