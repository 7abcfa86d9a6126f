// The small hand-written layer over the generated code: connecting with TLS and API-key
// options, streams as async iterators that an AbortSignal cancels, and an accumulator
// that turns a stream into one reply.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { createClient, type CallOptions, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { SecureClientSessionOptions } from "node:http2";

import {
  GenerateRequestSchema,
  GenerateStreamRequestSchema,
  MessageSchema,
  ModelRouterService,
  Role,
  type GenerateResponse,
  type GenerateStreamResponse,
  type Message,
  type StreamFinish,
  type StreamResume,
  type StreamStart,
} from "./gen/modelrouter/v1/modelrouter_pb.js";

export type GenerateRequestInit = MessageInitShape<typeof GenerateRequestSchema>;
export type GenerateStreamRequestInit = MessageInitShape<typeof GenerateStreamRequestSchema>;

export interface ConnectOptions {
  /** Connect over TLS: `true` for the system roots, or Node's TLS session options (ca, ...). */
  tls?: boolean | SecureClientSessionOptions;
  /**
   * Sent as `authorization: Bearer KEY` on every call. Over plaintext only to a loopback
   * address: any other target needs `tls`, so a key never crosses a network unencrypted.
   */
  apiKey?: string;
  /** The deadline of calls that set no `timeoutMs` of their own (default 300 s). */
  defaultTimeoutMs?: number;
}

/** A router connection: `api` is the generated client, the methods are the conveniences. */
export class ModelRouterClient {
  readonly api: Client<typeof ModelRouterService>;
  readonly #defaultTimeoutMs: number;

  constructor(target: string, options: ConnectOptions = {}) {
    const { tls = false, apiKey, defaultTimeoutMs = 300_000 } = options;
    if (apiKey !== undefined && tls === false && !isLoopback(target)) {
      throw new Error("apiKey to a non-loopback address needs tls: refusing to send a key in plaintext");
    }
    const interceptors: Interceptor[] = [];
    if (apiKey !== undefined) {
      interceptors.push((next) => (request) => {
        request.header.set("authorization", `Bearer ${apiKey}`);
        return next(request);
      });
    }
    const transport = createGrpcTransport({
      baseUrl: `${tls === false ? "http" : "https"}://${target}`,
      interceptors,
      ...(typeof tls === "object" ? { nodeOptions: tls } : {}),
    });
    this.api = createClient(ModelRouterService, transport);
    this.#defaultTimeoutMs = defaultTimeoutMs;
  }

  #options(options: CallOptions): CallOptions {
    return { timeoutMs: this.#defaultTimeoutMs, ...options };
  }

  /** One complete reply. */
  generate(request: GenerateRequestInit, options: CallOptions = {}): Promise<GenerateResponse> {
    return this.api.generate(request, this.#options(options));
  }

  /**
   * The reply as events (start, deltas, resume, finish). Aborting `options.signal`, or
   * leaving the `for await` loop early, cancels the call, and the router closes the
   * provider request.
   */
  stream(
    request: GenerateStreamRequestInit,
    options: CallOptions = {},
  ): AsyncIterable<GenerateStreamResponse> {
    return this.api.generateStream(request, this.#options(options));
  }
}

function isLoopback(target: string): boolean {
  const host = target.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A streamed answer put together. `finish` is undefined when the stream was stopped early. */
export interface Reply {
  text: string;
  thinking: string;
  start?: StreamStart;
  resumes: StreamResume[];
  finish?: StreamFinish;
  /** The model that finished the answer (or, before the finish, the one answering). */
  model: string;
}

export interface AccumulateOptions {
  /** Sees each event as it arrives; returning `false` stops reading, which cancels the call. */
  onEvent?: (event: GenerateStreamResponse) => boolean | void;
  /**
   * The signal the stream was started with: when it is aborted, the reply so far is
   * returned (with no `finish`) instead of the cancellation error.
   */
  signal?: AbortSignal;
}

/** Reads `events` into a Reply. */
export async function accumulate(
  events: AsyncIterable<GenerateStreamResponse>,
  options: AccumulateOptions = {},
): Promise<Reply> {
  const reply: Reply = { text: "", thinking: "", resumes: [], model: "" };
  try {
    for await (const event of events) {
      const e = event.event;
      switch (e.case) {
        case "start":
          reply.start = e.value;
          reply.model = e.value.model;
          break;
        case "delta":
          reply.text += e.value.text;
          break;
        case "thinkingDelta":
          reply.thinking += e.value.text;
          break;
        case "resume":
          reply.resumes.push(e.value);
          reply.model = e.value.model;
          break;
        case "finish":
          reply.finish = e.value;
          reply.model = e.value.model;
          break;
      }
      if (options.onEvent?.(event) === false) {
        break; // leaving the loop returns the iterator, which cancels the call
      }
    }
  } catch (error) {
    if (options.signal?.aborted !== true) {
      throw error;
    }
  }
  return reply;
}

export function system(content: string): Message {
  return create(MessageSchema, { role: Role.SYSTEM, content });
}

export function user(content: string, pinned = false): Message {
  return create(MessageSchema, { role: Role.USER, content, pinned });
}

export function assistant(content: string): Message {
  return create(MessageSchema, { role: Role.ASSISTANT, content });
}
