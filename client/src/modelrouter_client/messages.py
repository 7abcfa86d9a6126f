"""Shorthands for building request messages."""

from __future__ import annotations

from modelrouter.v1 import modelrouter_pb2 as pb


def system(content: str) -> pb.Message:
    return pb.Message(role=pb.ROLE_SYSTEM, content=content)


def user(content: str, *, pinned: bool = False) -> pb.Message:
    return pb.Message(role=pb.ROLE_USER, content=content, pinned=pinned)


def assistant(content: str) -> pb.Message:
    return pb.Message(role=pb.ROLE_ASSISTANT, content=content)
