import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Code,
  ConnectError,
  ModelRouterClient,
  Role,
  Task,
  accumulate,
  errorDetails,
  system,
  user,
} from "../src/index.js";
import { runAgent } from "../examples/agent.js";
import { emulator, startRouter, waitForDisconnects, type LiveRouter } from "./live-router.js";

describe("TypeScript client against a live modelrouter", () => {
  let router: LiveRouter;
  let client: ModelRouterClient;

  before(async () => {
    router = await startRouter();
    client = new ModelRouterClient(router.target, { defaultTimeoutMs: 60_000 });
  });
  after(async () => {
    await router?.stop();
  });

  test("unary Generate: snake_case fields arrive, int64 is a bigint, enums are typed", async () => {
    const reply = await client.generate({
      messages: [system("Be brief."), user("Name three primes.")],
      model: "gpt-4o-mini",
      maxOutputTokens: 64,
      task: Task.CHAT,
    });
    assert.equal(reply.model, "gpt-4o-mini-2024-07-18");
    assert.ok(reply.text.length > 0);
    assert.equal(typeof reply.usage?.outputTokens, "bigint");
    assert.ok(reply.usage!.outputTokens > 0n);
    assert.ok(reply.usage!.outputTokens <= 64n, "max_output_tokens was honoured");
    assert.ok(reply.attempts.length > 0);
  });

  test("stream: deltas accumulate into the reply, with start and finish", async () => {
    // Paced, so that tokens arrive one by one: the router joins those that arrive together.
    await emulator(router, "behavior", {
      model: "claude-3-7-sonnet-20250219",
      behavior: { tokens_per_second: 200 },
      enqueue: true,
    });
    const deltas: string[] = [];
    const reply = await accumulate(
      client.stream({ messages: [user("Explain backoff with jitter.")], model: "claude-3-7-sonnet" }),
      {
        onEvent: (event) => {
          if (event.event.case === "delta") deltas.push(event.event.value.text);
        },
      },
    );
    assert.ok(deltas.length >= 2);
    assert.equal(reply.text, deltas.join(""));
    assert.equal(reply.model, "claude-3-7-sonnet-20250219");
    assert.ok(reply.start !== undefined && reply.finish !== undefined);
    assert.ok(reply.finish.usage!.outputTokens > 0n);
  });

  test("abort after the first delta cancels the call and the emulator sees the disconnect", async () => {
    await emulator(router, "reset", {});
    // One token, then an hour's stall: only the cancel can end this stream.
    await emulator(router, "behavior", {
      model: "gpt-4o-mini-2024-07-18",
      behavior: { output_tokens: 50, stall_after_tokens: 1 },
      enqueue: true,
    });
    const controller = new AbortController();
    let deltas = 0;
    await assert.rejects(
      async () => {
        for await (const event of client.stream(
          { messages: [user("Count to fifty.")], model: "gpt-4o-mini", disableFallback: true },
          { signal: controller.signal },
        )) {
          if (event.event.case === "delta") {
            deltas += 1;
            controller.abort();
          }
        }
      },
      (error: unknown) => errorDetails(error).code === Code.Canceled,
    );
    assert.equal(deltas, 1);
    const records = await waitForDisconnects(router, 1, AbortSignal.timeout(30_000));
    assert.equal(records[0]!["model"], "gpt-4o-mini-2024-07-18");
  });

  test("a bad request's field violation is read from the details", async () => {
    const error = await client
      .generate({ messages: [user("hi")], model: "gpt-4o-mini", maxOutputTokens: -1 })
      .then(() => assert.fail("the call succeeded"), (e: unknown) => e);
    assert.ok(error instanceof ConnectError);
    const details = errorDetails(error);
    assert.equal(details.code, Code.InvalidArgument);
    assert.ok(details.fieldViolations.has("max_output_tokens"), details.message);
    assert.ok(details.errorInfo?.reason);
  });

  test("rate limited: RetryInfo's delay and ErrorInfo's reason", async () => {
    await emulator(router, "reset", {});
    await emulator(router, "behavior", {
      model: "*",
      behavior: { error_status: 429, retry_after_s: 1 },
    });
    try {
      const error = await client
        .generate({ messages: [user("hi")], task: Task.CHAT })
        .then(() => assert.fail("the call succeeded"), (e: unknown) => e);
      const details = errorDetails(error);
      assert.equal(details.code, Code.ResourceExhausted);
      assert.equal(details.retryDelayMs, 1000);
      assert.equal(details.errorInfo?.reason, "NO_CANDIDATES");
    } finally {
      await emulator(router, "reset", {});
    }
  });

  test("conversation round trip: create, generate into it, read it back, delete", async () => {
    const { conversation } = await client.api.createConversation({
      messages: [system("You are terse.")],
      metadata: { agent: "ts-test" },
    });
    assert.ok(conversation !== undefined);
    const reply = await client.generate({
      messages: [user("Remember the number 7.")],
      model: "gpt-4o-mini",
      conversationId: conversation.id,
    });
    const stored = (await client.api.getConversation({ id: conversation.id })).conversation!;
    assert.equal(stored.messages.length, 3);
    assert.equal(stored.messages[1]!.message?.content, "Remember the number 7.");
    assert.equal(stored.messages[2]!.message?.role, Role.ASSISTANT);
    assert.equal(stored.messages[2]!.message?.content, reply.text);
    assert.equal(stored.metadata["agent"], "ts-test");
    await client.api.deleteConversation({ id: conversation.id });
    const error = await client.api
      .getConversation({ id: conversation.id })
      .then(() => assert.fail("deleted conversation still readable"), (e: unknown) => e);
    assert.equal(errorDetails(error).code, Code.NotFound);
  });

  test("the example agent runs as documented", async () => {
    let text = "";
    await runAgent(router.target, (chunk) => (text += chunk), 40);
    for (const want of [
      "answering: ",
      "stopped after ",
      "InvalidArgument ",
      "max_output_tokens: ",
      "0 SYSTEM You are terse.",
      "1 USER Remember the number 7.",
      "4 ASSISTANT ",
    ]) {
      assert.ok(text.includes(want), `output lacks ${want}:\n${text}`);
    }
  });

  test("an API key goes in plaintext only to a loopback address", async () => {
    assert.throws(() => new ModelRouterClient("router.example:50051", { apiKey: "k" }), /needs tls/);
    const withKey = new ModelRouterClient(router.target, { apiKey: "k" });
    const models = await withKey.api.listModels({});
    assert.ok(models.models.length > 0);
  });
});
