"""The floor under the hold row: the least memory a Python relay on grpc.aio holds per stream.

A bare grpc.aio server with one handler, `GenerateStream`, that relays each call to the
stand-in over a connection of its own: raw HTTP/1.1 over asyncio streams, the SSE read line
by line, one `TextDelta` per token. No routing, retries, fallback, deadlines, metrics,
logs, auth, SDK or HTTP library: what is left is grpc.aio's own cost per call, one
upstream socket and one coroutine. The bench holds the same streams on it as on the
router, so the report can show how much of the router's memory per stream is the router's.

Run: `python -m bench.relay_floor --upstream http://127.0.0.1:8000` (prints
`listening on PORT` when ready).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from modelrouter.v1 import modelrouter_pb2 as pb
from modelrouter_testsupport.child_process import terminate

from bench.machine import tree_rss_bytes
from bench.standin_process import start_listening


@dataclass(frozen=True)
class FloorProcess:
    target: str
    process: subprocess.Popen[bytes]

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.process.pid)


def start_floor(upstream: str, log_path: Path) -> FloorProcess:
    """Start the relay on a free port, relaying to `upstream`; returns once it listens."""
    port, process = start_listening("bench.relay_floor", ["--upstream", upstream], log_path)
    return FloorProcess(target=f"127.0.0.1:{port}", process=process)


def stop_floor(floor: FloorProcess) -> None:
    terminate(floor.process, grace_s=10)


SERVICE = "modelrouter.v1.ModelRouterService"


class _Relay:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port

    async def generate_stream(
        self,
        request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateStreamResponse],
    ) -> AsyncIterator[pb.GenerateStreamResponse]:
        body = json.dumps(
            {
                "model": request.model,
                "stream": True,
                "messages": [{"role": "user", "content": m.content} for m in request.messages],
            }
        ).encode()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (self._host.encode(), len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                await context.abort(grpc.StatusCode.UNAVAILABLE, head.split(b"\r\n", 1)[0].decode())
            yield pb.GenerateStreamResponse(start=pb.StreamStart(model=request.model))
            # The stand-in's body is chunked, one SSE event a chunk that ends a line: the
            # size line, then the event (the relay reads no other upstream).
            while True:
                line = await reader.readline()
                if not line:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "upstream closed early")
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                for choice in json.loads(data).get("choices", ()):
                    if text := choice.get("delta", {}).get("content"):
                        yield pb.GenerateStreamResponse(delta=pb.TextDelta(text=text))
            finish = pb.StreamFinish(finish_reason=pb.FINISH_REASON_STOP)
            yield pb.GenerateStreamResponse(finish=finish)
        finally:
            writer.close()


async def serve(upstream: str, port: int) -> None:
    url = urlsplit(upstream)
    relay = _Relay(url.hostname or "127.0.0.1", url.port or 80)
    handler = grpc.unary_stream_rpc_method_handler(
        relay.generate_stream,
        request_deserializer=pb.GenerateRequest.FromString,
        response_serializer=pb.GenerateStreamResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"GenerateStream": handler})]
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on {bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay_floor", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the stand-in's base URL")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()
