"""The stand-in upstream: a minimal OpenAI-compatible HTTP/1.1 server for `make bench`.

Every system the bench compares (the `openai` SDK called directly, modelrouter, LiteLLM)
calls this one server, so the comparison measures the callers, not the upstream. It is
built to be much cheaper per call than any of them: an asyncio protocol, no framework,
replies assembled from pre-encoded bytes. It answers `POST /v1/chat/completions`:

- unary: a `tokens`-token completion at once;
- `"stream": true`: an SSE stream of `tokens` chunks, each sent `delay_ms` after the one
  before (the first too), then a finish chunk, a usage chunk and `[DONE]`.

What to answer rides in the prompt, so every caller passes it through unchanged: the text
may hold `tokens=N`, `delay_ms=D`, `first_ms=F` (the first token's own delay; default D)
and `tag=NAME`. A tagged stream whose client goes away
before its end is recorded with the time (`time.monotonic()`, one clock for every process
on the machine) its connection was seen to close: the cancel -> upstream-closed figure.

`GET /_standin/stats` returns the counters as JSON; `POST /_standin/reset` zeroes them.
Run: `python -m bench.standin --port 8000` (prints `listening on PORT` when ready).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass, field

DEFAULT_TOKENS = 16
# Distinct words in turn: LiteLLM fails a stream whose chunks repeat one text too often
# ("The model is repeating the same chunk").
WORDS = tuple(f"w{i} " for i in range(16))


def answer_text(tokens: int) -> str:
    return "".join(WORDS[i % len(WORDS)] for i in range(tokens))


_MAX_HEAD = 64 * 1024

_TOKENS = re.compile(rb"tokens=(\d+)")
_DELAY = re.compile(rb"delay_ms=(\d+(?:\.\d+)?)")
_FIRST = re.compile(rb"first_ms=(\d+(?:\.\d+)?)")
_TAG = re.compile(rb"tag=([A-Za-z0-9_.-]+)")
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


@dataclass
class Counters:
    """What the server has done since the last reset."""

    unary: int = 0
    streams_started: int = 0
    streams_done: int = 0
    open_streams: int = 0
    peak_open_streams: int = 0
    disconnects: dict[str, float] = field(default_factory=dict)
    """Tag -> monotonic time its stream's connection was seen to close before the end."""

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "unary": self.unary,
                "streams_started": self.streams_started,
                "streams_done": self.streams_done,
                "open_streams": self.open_streams,
                "peak_open_streams": self.peak_open_streams,
                "disconnects": self.disconnects,
                "now": time.monotonic(),
            }
        ).encode()


@dataclass(frozen=True)
class Ask:
    """What one request asks for."""

    model: str
    stream: bool
    tokens: int
    delay_s: float
    first_s: float
    tag: str


def parse_ask(body: bytes) -> Ask:
    """The directives of a chat completion body, read with regexes rather than a JSON
    parse: the server must cost less than its callers."""
    model = _MODEL.search(body)
    tokens = _TOKENS.search(body)
    delay = _DELAY.search(body)
    tag = _TAG.search(body)
    first = _FIRST.search(body)
    delay_s = float(delay.group(1)) / 1000 if delay else 0.0
    return Ask(
        model=model.group(1).decode() if model else "standin",
        stream=_STREAM.search(body) is not None,
        tokens=int(tokens.group(1)) if tokens else DEFAULT_TOKENS,
        delay_s=delay_s,
        first_s=float(first.group(1)) / 1000 if first else delay_s,
        tag=tag.group(1).decode() if tag else "",
    )


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: " + content_type
        + b"\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nx-request-id: req_standin\r\n\r\n" + body
    )  # fmt: skip


class Replies:
    """Pre-encoded replies per (model, tokens): encoding JSON per call would make the
    stand-in as slow as what it measures."""

    def __init__(self) -> None:
        self._unary: dict[tuple[str, int], bytes] = {}
        self._chunks: dict[str, tuple[bytes, tuple[bytes, ...]]] = {}
        self._tails: dict[tuple[str, int], bytes] = {}

    def unary(self, model: str, tokens: int) -> bytes:
        key = (model, tokens)
        if key not in self._unary:
            body = {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer_text(tokens)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": _usage(tokens),
            }
            self._unary[key] = _response("200 OK", json.dumps(body).encode())
        return self._unary[key]

    def stream_parts(self, model: str, tokens: int) -> tuple[bytes, tuple[bytes, ...], bytes]:
        """(headers plus the role chunk, the token chunks to send in turn, the finish +
        usage + [DONE] tail), each already in HTTP/1.1 chunked framing."""
        if model not in self._chunks:
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\nx-request-id: req_standin\r\n\r\n"
            )
            role = _event(model, {"role": "assistant", "content": ""}, None)
            words = tuple(_chunked(_event(model, {"content": w}, None)) for w in WORDS)
            self._chunks[model] = (head + _chunked(role), words)
        head, words = self._chunks[model]
        key = (model, tokens)
        if key not in self._tails:
            finish = _event(model, {}, "stop")
            usage = _sse(
                {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [],
                    "usage": _usage(tokens),
                }
            )
            self._tails[key] = _chunked(finish + usage + b"data: [DONE]\n\n") + b"0\r\n\r\n"
        return head, words, self._tails[key]


def _sse(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _event(model: str, delta: dict[str, str], finish: str | None) -> bytes:
    return _sse(
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class StandIn:
    """The server's shared state: counters and reply cache."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.replies = Replies()

    def reset(self) -> None:
        self.counters = Counters()


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 keep-alive, requests answered in order."""

    def __init__(self, server: StandIn) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._streaming: asyncio.Task[None] | None = None
        self._stream_tag = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._streaming is None and (request := self._take_request()) is not None:
            self._handle(*request)

    def eof_received(self) -> bool:
        self._closed()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        streaming, self._streaming = self._streaming, None
        if streaming is None:
            return
        counters = self._server.counters
        counters.open_streams -= 1
        if self._stream_tag:
            counters.disconnects[self._stream_tag] = time.monotonic()
        streaming.cancel()
        if self._transport is not None:
            self._transport.close()

    def _take_request(self) -> tuple[bytes, bytes] | None:
        """(request line, body) of the next complete request in the buffer."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_HEAD and self._transport is not None:
                self._transport.close()
            return None
        head = self._buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        body = self._buffer[end + 4 : total]
        self._buffer = self._buffer[total:]
        return head.split(b"\r\n", 1)[0], body

    def _handle(self, request_line: bytes, body: bytes) -> None:
        assert self._transport is not None
        method, _, rest = request_line.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        server = self._server
        if method == b"POST" and path.endswith(b"/chat/completions"):
            ask = parse_ask(body)
            if ask.stream:
                self._start_stream(ask)
            else:
                server.counters.unary += 1
                self._transport.write(server.replies.unary(ask.model, ask.tokens))
        elif path == b"/_standin/stats":
            self._transport.write(_response("200 OK", server.counters.as_json()))
        elif path == b"/_standin/reset" and method == b"POST":
            server.reset()
            self._transport.write(_response("200 OK", b"{}"))
        else:
            error = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
            self._transport.write(_response("404 Not Found", error))

    def _start_stream(self, ask: Ask) -> None:
        counters = self._server.counters
        counters.streams_started += 1
        counters.open_streams += 1
        counters.peak_open_streams = max(counters.peak_open_streams, counters.open_streams)
        self._stream_tag = ask.tag
        head, words, tail = self._server.replies.stream_parts(ask.model, ask.tokens)
        assert self._transport is not None
        if ask.delay_s <= 0:
            # Nothing to wait for: the whole answer in one write.
            body = b"".join(words[i % len(words)] for i in range(ask.tokens))
            self._transport.write(head + body + tail)
            counters.open_streams -= 1
            counters.streams_done += 1
            return
        self._transport.write(head)
        self._streaming = asyncio.get_running_loop().create_task(self._paced(words, tail, ask))

    async def _paced(self, words: tuple[bytes, ...], tail: bytes, ask: Ask) -> None:
        transport = self._transport
        assert transport is not None
        for i in range(ask.tokens):
            await asyncio.sleep(ask.first_s if i == 0 else ask.delay_s)
            transport.write(words[i % len(words)])
        transport.write(tail)
        self._streaming = None
        counters = self._server.counters
        counters.open_streams -= 1
        counters.streams_done += 1
        # The next request may already be waiting in the buffer.
        self.data_received(b"")


async def serve(host: str, port: int) -> None:
    server = StandIn()
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: _Connection(server), host, port, backlog=4096, reuse_address=True
    )
    bound = listener.sockets[0].getsockname()[1]
    print(f"listening on {bound}", flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    _raise_nofile()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


def _raise_nofile() -> None:
    """10,000 open streams are 10,000 sockets: take the whole hard limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    main()
