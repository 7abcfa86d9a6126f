// A tiny agent over modelrouter, in four steps (the same four examples as
// docs/typescript.md): a unary call, a stream it stops early with an AbortSignal, a bad
// request's error details, and a server-side conversation.
//
//   npm --workspace client/typescript run build
//   node client/typescript/dist/examples/agent.js 127.0.0.1:50051
import { pathToFileURL } from "node:url";

import {
  Code,
  ModelRouterClient,
  Role,
  Task,
  accumulate,
  errorDetails,
  system,
  user,
} from "../src/index.js";

type Out = (text: string) => void;

async function unary(client: ModelRouterClient, out: Out): Promise<void> {
  const reply = await client.generate({
    messages: [system("Be brief."), user("Name three primes.")],
    task: Task.CHAT,
    maxOutputTokens: 64,
  });
  out(`${reply.text}\n`);
  out(`${reply.model} ${reply.usage?.outputTokens} ${reply.usage?.costUsd}\n`);
}

async function streamAndStop(client: ModelRouterClient, out: Out, maxChars: number): Promise<void> {
  // Aborting the signal cancels the call; the router closes the provider request.
  const enough = new AbortController();
  let seen = 0;
  const reply = await accumulate(
    client.stream({ messages: [user("Write a long essay on retries.")], task: Task.CHAT }, { signal: enough.signal }),
    {
      signal: enough.signal,
      onEvent: (event) => {
        if (event.event.case === "start") out(`answering: ${event.event.value.model}\n`);
        if (event.event.case === "delta") {
          out(event.event.value.text);
          seen += event.event.value.text.length;
          if (seen >= maxChars) enough.abort();
        }
      },
    },
  );
  if (reply.finish === undefined) {
    out(`\nstopped after ${reply.text.length} characters\n`);
  } else {
    out(`\nfinished: ${reply.finish.usage?.outputTokens} tokens\n`);
  }
}

async function badRequest(client: ModelRouterClient, out: Out): Promise<void> {
  try {
    await client.generate({ messages: [user("hi")], model: "gpt-4o-mini", maxOutputTokens: -1 });
  } catch (error) {
    const details = errorDetails(error);
    out(`${Code[details.code]} ${details.errorInfo?.reason}\n`);
    for (const [field, problem] of details.fieldViolations) {
      out(`${field}: ${problem}\n`);
    }
  }
}

async function conversation(client: ModelRouterClient, out: Out): Promise<void> {
  const created = await client.api.createConversation({ messages: [system("You are terse.")] });
  const id = created.conversation!.id;
  for (const turn of ["Remember the number 7.", "Which number?"]) {
    const reply = await client.generate({ messages: [user(turn)], conversationId: id });
    out(`${reply.text}\n`);
  }
  const { conversation: stored } = await client.api.getConversation({ id });
  for (const item of stored!.messages) {
    out(`${item.seq} ${Role[item.message?.role ?? Role.UNSPECIFIED]} ${item.message?.content}\n`);
  }
  await client.api.deleteConversation({ id });
}

/** Runs the four steps against `target`, writing what they do to `out`. */
export async function runAgent(
  target: string,
  out: Out = (text) => process.stdout.write(text),
  // Below the emulator's whole answer (about 140 characters), so the stream step really
  // cancels mid-answer when run against `make run`.
  maxChars = 40,
): Promise<void> {
  const client = new ModelRouterClient(target, { defaultTimeoutMs: 60_000 });
  await unary(client, out);
  await streamAndStop(client, out, maxChars);
  await badRequest(client, out);
  await conversation(client, out);
}

// Run only when started as a script, not when a test imports runAgent.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  runAgent(process.argv[2] ?? "127.0.0.1:50051").catch((error: unknown) => {
    console.error("example agent:", error);
    process.exitCode = 1;
  });
}
