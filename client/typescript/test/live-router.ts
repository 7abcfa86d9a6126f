// Starts a real `modelrouter serve` (with its built-in provider emulator) for the tests,
// through the repository's Python helper `python -m modelrouter_testsupport.live_router`.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/ -> the repository root.
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

export interface LiveRouter {
  target: string;
  emulatorUrl: string;
  stop(): Promise<void>;
}

export async function startRouter(): Promise<LiveRouter> {
  const python = process.env["MODELROUTER_PYTHON"] ?? join(root, ".venv", "bin", "python");
  const dir = mkdtempSync(join(tmpdir(), "mrclient-ts-"));
  const child: ChildProcess = spawn(python, ["-m", "modelrouter_testsupport.live_router", dir], {
    cwd: root,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((ready, fail) => {
    lines.once("line", ready);
    child.once("exit", (code) => fail(new Error(`router helper exited with ${code} before it was ready`)));
    child.once("error", fail);
  });
  const { target, emulator_url: emulatorUrl } = JSON.parse(first) as {
    target: string;
    emulator_url: string;
  };
  return {
    target,
    emulatorUrl,
    async stop() {
      child.stdin!.end(); // the helper stops the router when its stdin closes
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Calls the emulator's admin API: POST with a body, GET without. */
export async function emulator<T = unknown>(router: LiveRouter, path: string, body?: object): Promise<T> {
  const response = await fetch(`${router.emulatorUrl}/_emulator/${path}`, {
    method: body === undefined ? "GET" : "POST",
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  if (!response.ok) {
    throw new Error(`emulator ${path}: ${response.status} ${await response.text()}`);
  }
  return (await response.json()) as T;
}

/** Polls the emulator's record until it holds `count` client disconnects, or `signal` ends the wait. */
export async function waitForDisconnects(
  router: LiveRouter,
  count: number,
  signal: AbortSignal,
): Promise<Array<Record<string, unknown>>> {
  for (;;) {
    const records = await emulator<Array<Record<string, unknown>>>(router, "disconnects");
    if (records.length >= count) {
      return records;
    }
    signal.throwIfAborted();
    await new Promise((next) => setTimeout(next, 20));
  }
}
