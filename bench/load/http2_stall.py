"""Does the HTTP/2 client hold a stream's data back? The check behind `http2 = false` as
the providers' default (schema `ProviderConfig.http2`).

A hypercorn server (its own process, over h2c: in the clients' event loop the race does
not show) answers each POST with a stream: its first chunk at once, the next `--delay-s`
later. `--streams` streams are opened at once over one
HTTP/2 connection, by httpx2's client (what the router uses for `http2 = true`) and by a
bare `h2` client that reads the socket itself, for `--rounds` rounds each. A stream whose
first chunk arrives later than `--delay-s / 2` was held back: its data waited for other
data on the connection. The bare client shows what the server sent when.

Run with `python -m bench.load.http2_stall` (`--streams 10 --delay-s 2 --rounds 5`).
When httpx2's rounds hold nothing back, across several runs, HTTP/2 may be worth making
the default again.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import httpx2
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework
from modelrouter_testsupport.child_process import terminate

from bench.standin_process import start_listening

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _app(delay_s: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        await asyncio.sleep(delay_s)
        await send({"type": "http.response.body", "body": b"data: second\n\n"})

    return app


async def _httpx2_firsts(port: int, streams: int) -> list[float]:
    async with httpx2.AsyncClient(http1=False, http2=True, timeout=60) as client:
        started = time.monotonic()

        async def first() -> float:
            # Read to the end, as a relay does: a stream that has its first chunk then
            # waits for the next, and that wait is what can hold the others' data back.
            arrivals = []
            url = f"http://127.0.0.1:{port}/"
            async with client.stream("POST", url, content=b"{}") as response:
                async for _chunk in response.aiter_raw():
                    arrivals.append(time.monotonic() - started)
            if not arrivals:
                raise RuntimeError("the stream ended without data")
            return arrivals[0]

        return await asyncio.gather(*[first() for _ in range(streams)])


async def _bare_h2_firsts(port: int, streams: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    started = time.monotonic()
    for _ in range(streams):
        stream_id = connection.get_next_available_stream_id()
        headers = [(":method", "POST"), (":authority", "127.0.0.1"), (":scheme", "http")]
        connection.send_headers(stream_id, [*headers, (":path", "/")])
        connection.send_data(stream_id, b"{}", end_stream=True)  # the body httpx2 sends
    writer.write(connection.data_to_send())
    firsts: dict[int, float] = {}
    ended = 0
    try:
        while ended < streams:
            data = await reader.read(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.DataReceived) and event.stream_id is not None:
                    firsts.setdefault(event.stream_id, time.monotonic() - started)
                    length = event.flow_controlled_length or 0
                    connection.acknowledge_received_data(length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended += 1
                elif isinstance(event, h2.events.StreamReset):
                    raise RuntimeError(f"the server reset stream {event.stream_id}")
            writer.write(connection.data_to_send())
    finally:
        writer.close()
        await writer.wait_closed()
    if len(firsts) < streams:
        raise RuntimeError(f"{streams - len(firsts)} streams ended without data")
    return list(firsts.values())


async def _serve(delay_s: float) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = Config()
    settings.bind = [f"fd://{listener.detach()}"]
    settings.accesslog = settings.errorlog = None
    print(f"listening on {port}", flush=True)
    await serve(cast(ASGIFramework, _app(delay_s)), settings)


async def _rounds(port: int, streams: int, delay_s: float, rounds: int) -> None:
    for round_ in range(1, rounds + 1):
        for name, firsts in (
            ("httpx2", _httpx2_firsts),
            ("bare h2", _bare_h2_firsts),
        ):
            # A bound, so a stream the client never sees end fails the run, not hangs it.
            times = await asyncio.wait_for(firsts(port, streams), timeout=10 * delay_s + 30)
            held = [t for t in times if t > delay_s / 2]
            print(
                f"round {round_}, {name:7s}: {len(held)} of {streams} streams held back"
                f"{f' (first chunk after {min(held):.2f} s)' if held else ''}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.http2_stall", description=__doc__)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--delay-s", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.delay_s))
        return
    with tempfile.TemporaryDirectory() as directory:
        port, server = start_listening(
            "bench.load.http2_stall",
            ["--serve", "--delay-s", str(args.delay_s)],
            Path(directory) / "server.log",
        )
        try:
            asyncio.run(_rounds(port, args.streams, args.delay_s, args.rounds))
        finally:
            terminate(server, grace_s=5)


if __name__ == "__main__":
    main()
