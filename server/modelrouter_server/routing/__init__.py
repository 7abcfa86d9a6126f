"""Routing: the candidate models for a request, in order, filtered before any call."""

from modelrouter_server.routing.candidate import Candidate, RoutePlan
from modelrouter_server.routing.router import Router, TokenCount
from modelrouter_server.routing.settings import REASONING_THINKING_BUDGET

__all__ = [
    "REASONING_THINKING_BUDGET",
    "Candidate",
    "RoutePlan",
    "Router",
    "TokenCount",
]
