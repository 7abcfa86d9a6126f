"""modelrouter's Python client: the generated stubs plus thin async and sync clients.

from modelrouter_client import AsyncModelRouterClient, pb, user

async with AsyncModelRouterClient("127.0.0.1:50051") as client:
    reply = await client.generate([user("Hello")], task=pb.TASK_CHAT)
"""

from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter.v1 import modelrouter_pb2_grpc as pb_grpc

from modelrouter_client._request import GenerateOptions, generate_request
from modelrouter_client.aio import AsyncModelRouterClient
from modelrouter_client.connect import KeyWithoutTls, TlsFiles, auth_metadata
from modelrouter_client.errors import (
    CancelledError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    ModelRouterError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from modelrouter_client.messages import assistant, system, user
from modelrouter_client.sync import ModelRouterClient
from modelrouter_client.tools import ToolLoopLimit, ToolRun, tool_definition

__all__ = [
    "AsyncModelRouterClient",
    "CancelledError",
    "DeadlineExceededError",
    "GenerateOptions",
    "InternalError",
    "InvalidArgumentError",
    "KeyWithoutTls",
    "ModelRouterClient",
    "ModelRouterError",
    "NotFoundError",
    "ResourceExhaustedError",
    "TlsFiles",
    "ToolLoopLimit",
    "ToolRun",
    "UnavailableError",
    "assistant",
    "auth_metadata",
    "generate_request",
    "pb",
    "pb_grpc",
    "system",
    "tool_definition",
    "user",
]
