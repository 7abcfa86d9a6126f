"""`modelrouter chat`: an interactive terminal chat over `GenerateStream`.

The history lives here, on the client: each turn sends the whole conversation. Tokens are
printed as they arrive; a status line at the bottom shows the answering model, time to
first token, tokens per second and cost while the reply streams.

Cancellation: every turn runs on one `asyncio.Runner`. On Ctrl-C the runner cancels the
turn's task, the client's stream cancels its RPC (so the router closes the upstream
request), and `Runner.run` raises KeyboardInterrupt, which ends the turn, not the session.
At the prompt, Ctrl-C drops the line being typed, as a shell does; Ctrl-D or /quit exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

import grpc
from modelrouter_client import AsyncModelRouterClient, assistant, pb, system, user

from modelrouter_server.cli._common import (
    EXIT_OK,
    EXIT_RPC_ERROR,
    TASKS,
    Connection,
    add_connection_arguments,
    connection_from,
    describe_rpc_error,
    non_negative_int,
    report_rpc_error,
    task_name,
)
from modelrouter_server.cli._stats import (
    ReplyMeter,
    estimate_cost_usd,
    format_rate,
    format_seconds,
    format_usd,
)
from modelrouter_server.cli._terminal import StatusBar, Style, ansi_enabled

HELP = """\
/model NAME   answer with this model (or an alias); /model auto lets the router choose
/task NAME    route by task: auto, chat, reasoning, code, summarize, extract
/reset        forget the conversation (keeps the system prompt)
/help         this help
/quit         leave (or Ctrl-D); Ctrl-C cancels a reply in progress"""

# Redrawing the status line on every token would cost more than the tokens themselves.
_STATUS_INTERVAL_S = 0.1
# The first call also checks the router is there; a missing router should fail fast.
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ChatSettings:
    connection: Connection
    model: str
    task: str
    max_output_tokens: int
    system_prompt: str
    plain: bool


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="interactive chat in the terminal",
        description="Chat with the router's models; the history is kept on this side.",
    )
    add_connection_arguments(parser)
    parser.add_argument("--model", default="", help="model id or alias (default: by task)")
    parser.add_argument("--task", type=task_name, default="chat", help="route (default chat)")
    parser.add_argument(
        "--max-output-tokens", type=non_negative_int, default=0, help="0: the model's default"
    )
    parser.add_argument("--system", default="", help="system prompt for the conversation")
    parser.add_argument("--plain", action="store_true", help="no colours or status line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = ChatSettings(
        connection=connection_from(args),
        model=str(args.model),
        task=str(args.task),
        max_output_tokens=int(args.max_output_tokens),
        system_prompt=str(args.system),
        plain=bool(args.plain),
    )
    return ChatSession(settings).run()


@dataclass(slots=True)
class _Reply:
    """One streamed reply as it arrives (mutable, owned by one `_turn`)."""

    input_chars: int
    meter: ReplyMeter = field(default_factory=ReplyMeter)
    text: list[str] = field(default_factory=list)
    model: str = ""
    thinking: bool = False
    """Thinking text is being shown: the answer starts on a new line."""
    finish: pb.StreamFinish | None = None
    last_status: float = 0.0


class ChatSession:
    """One terminal conversation: the prompt loop, the history and the running totals."""

    def __init__(self, settings: ChatSettings, *, stdout: TextIO = sys.stdout) -> None:
        # Lines are read with input() (readline editing and history), so from sys.stdin.
        self._settings = settings
        self._out = stdout
        ansi = ansi_enabled(stdout, plain=settings.plain)
        self._style = Style(enabled=ansi)
        self._status = StatusBar(stdout, enabled=ansi)
        self._model = settings.model
        self._task = settings.task
        self._history: list[pb.Message] = []
        if settings.system_prompt:
            self._history.append(system(settings.system_prompt))
        self._pricing: dict[str, pb.Pricing] = {}
        self._turns = 0
        self._session_cost = 0.0

    def run(self) -> int:
        """Run the session until Ctrl-D or /quit; returns the exit status."""
        _enable_line_editing()
        # SIGTERM should restore the terminal like any other exit: turn it into SystemExit
        # so the `finally` below runs.
        previous_term = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        try:
            with asyncio.Runner() as runner:
                client = runner.run(self._connect())
                if client is None:
                    return EXIT_RPC_ERROR
                try:
                    self._greet()
                    self._status.open()
                    self._idle_status()
                    return self._loop(runner, client)
                finally:
                    self._status.close()
                    runner.run(client.close())
        finally:
            signal.signal(signal.SIGTERM, previous_term)

    async def _connect(self) -> AsyncModelRouterClient | None:
        connection = self._settings.connection
        client = connection.client()
        try:
            models = await client.list_models(timeout=min(connection.timeout_s, _CONNECT_TIMEOUT_S))
        except grpc.aio.AioRpcError as exc:
            await client.close()
            report_rpc_error(exc, connection)
            return None
        for info in models:
            for name in (info.id, *info.aliases):
                self._pricing[name] = info.pricing
        return client

    def _greet(self) -> None:
        s = self._style
        target = self._settings.connection.target
        self._write(
            f"{s.bold('modelrouter chat')} {s.dim(f'at {target}')}\n"
            f"{s.dim('Ctrl-C cancels a reply, Ctrl-D or /quit leaves, /help lists commands.')}\n"
        )

    def _loop(self, runner: asyncio.Runner, client: AsyncModelRouterClient) -> int:
        prompt = self._style.readline_safe(self._style.bold(self._style.green("you> ")))
        while True:
            try:
                line = input(prompt)
            except EOFError:
                self._write("\n")
                return EXIT_OK
            except KeyboardInterrupt:
                self._write("\n")
                continue
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self._command(line):
                    return EXIT_OK
                continue
            try:
                runner.run(self._turn(client, line))
            except KeyboardInterrupt:
                self._write("\n" + self._style.yellow("[reply cancelled]") + "\n")
                self._idle_status()

    def _command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self._write(self._style.dim(HELP) + "\n")
        elif name == "/reset":
            self._history = [m for m in self._history if m.role == pb.ROLE_SYSTEM]
            self._write(self._style.dim("[conversation cleared]") + "\n")
        elif name == "/model" and argument:
            self._model = "" if argument == "auto" else argument
            self._write(self._style.dim(f"[model: {argument}]") + "\n")
        elif name == "/task" and argument.lower() in TASKS:
            self._task = argument.lower()
            self._write(self._style.dim(f"[task: {self._task}]") + "\n")
        else:
            self._write(self._style.yellow(f"unknown or incomplete command: {line}") + "\n")
        self._idle_status()
        return True

    async def _turn(self, client: AsyncModelRouterClient, text: str) -> None:
        """Stream one reply; the history grows only when the reply completes."""
        s = self._style
        messages = [*self._history, user(text)]
        reply = _Reply(input_chars=sum(len(m.content) for m in messages))
        self._status.show(s.dim("waiting for the first token... (Ctrl-C cancels)"))
        try:
            async for event in client.stream(
                messages,
                model=self._model,
                task=TASKS[self._task],
                max_output_tokens=self._settings.max_output_tokens,
            ):
                self._show_event(reply, event)
                self._show_progress(reply)
        except grpc.aio.AioRpcError as exc:
            self._write("\n" + s.red(f"error: {describe_rpc_error(exc)}") + "\n")
            self._idle_status()
            return
        finish = reply.finish
        if finish is None:
            self._write("\n" + s.red("error: the stream ended without a finish event") + "\n")
            self._idle_status()
            return
        reply.meter.finish(finish.usage)
        self._turns += 1
        self._session_cost += finish.usage.cost_usd
        # The history is sent back next turn, and an empty assistant message is refused.
        said = "".join(reply.text) or finish.refusal.text or "[no answer text]"
        self._history.extend([user(text), assistant(said)])
        self._write("\n" + s.dim(self._stats_line(finish, reply.meter, reply.model)) + "\n")
        self._idle_status()

    def _show_event(self, reply: _Reply, event: pb.GenerateStreamResponse) -> None:
        """Write one stream event to the terminal and note it in `reply`."""
        s = self._style
        kind = event.WhichOneof("event")
        if kind == "start":
            reply.model = event.start.model
            self._write(s.bold(s.cyan(reply.model)) + s.dim(": "))
        elif kind == "thinking_delta":
            reply.thinking = True
            self._write(s.dim(event.thinking_delta.text))
        elif kind == "delta":
            if reply.thinking:
                self._write("\n")
                reply.thinking = False
            reply.meter.on_text()
            reply.text.append(event.delta.text)
            self._write(event.delta.text)
        elif kind == "refusal_delta":
            reply.meter.on_text()
            reply.text.append(event.refusal_delta.text)
            self._write(s.yellow(event.refusal_delta.text))
        elif kind == "resume":
            reply.model = event.resume.model
            self._write(s.dim(f" [continued by {reply.model}] "))
        elif kind == "finish":
            reply.finish = event.finish

    def _show_progress(self, reply: _Reply) -> None:
        """Refresh the status bar (model, speed, estimated cost) at most every 0.1 s."""
        now = time.monotonic()
        if now - reply.last_status < _STATUS_INTERVAL_S:
            return
        reply.last_status = now
        meter = reply.meter
        cost = estimate_cost_usd(
            self._pricing.get(reply.model),
            input_chars=reply.input_chars,
            output_tokens=meter.deltas,
        )
        self._status.show(
            self._style.dim(
                f"streaming {reply.model or '...'} | ttft {format_seconds(meter.ttft_s)}"
                f" | {format_rate(meter.tokens_per_second())} | ~{format_usd(cost)}"
                " | Ctrl-C cancels"
            )
        )

    def _stats_line(self, finish: pb.StreamFinish, meter: ReplyMeter, model: str) -> str:
        usage = finish.usage
        parts = [
            f"{finish.model or model} via {finish.provider or '?'}",
            f"ttft {format_seconds(meter.ttft_s)}",
            format_rate(meter.tokens_per_second()),
            f"{usage.input_tokens} in / {usage.output_tokens} out tokens",
            format_usd(usage.cost_usd),
        ]
        if finish.fallback:
            parts.append("fallback")
        if finish.resumed:
            parts.append("resumed")
        if finish.finish_reason == pb.FINISH_REASON_REFUSAL:
            parts.append("refused")
        if finish.finish_detail:
            parts.append(finish.finish_detail)
        return "[" + " | ".join(parts) + "]"

    def _idle_status(self) -> None:
        model = self._model or "auto"
        self._status.show(
            self._style.dim(
                f"model {model} | task {self._task} | {self._turns} replies"
                f" | session {format_usd(self._session_cost)} | Ctrl-D quits"
            )
        )

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _enable_line_editing() -> None:
    # Importing readline gives input() arrow keys and history; absent on some platforms.
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
