// The JSON-lines socket server shared by the admin and simulator sockets, on a real unix socket:
// each client is bounded on its own, and only the offender is dropped.
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LineServer, type LineClient } from "../../../src/lines/server.js";
import { silentLogger } from "../../../src/log.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function serve(opts: { maxLinesPerSecond?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "lines-"));
  const messages: unknown[] = [];
  const bad: string[] = [];
  const server = new LineServer({
    path: join(dir, "s.sock"),
    mode: 0o600,
    maxLineBytes: 16 * 1024,
    maxBacklogBytes: 4 * 2 ** 20,
    log: silentLogger(),
    ...opts,
    onMessage: (client: LineClient, value) => {
      messages.push(value);
      server.broadcast({ echo: value }); // every line makes output for every client, like key presses on the sim socket
      client.send({ ok: true });
    },
    onBadLine: (client, reason) => {
      bad.push(reason);
      client.send({ error: reason });
    },
  });
  await server.start();
  cleanups.push(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const client = async () => {
    const s = connect(join(dir, "s.sock"));
    await new Promise<void>((resolve) => s.once("connect", () => resolve()));
    let text = "";
    s.setEncoding("utf8").on("data", (d: string) => (text += d));
    cleanups.push(() => void s.destroy());
    return { s, lines: () => text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  };
  return { server, messages, bad, client };
}

const closed = (s: Socket) => new Promise<void>((resolve) => (s.closed ? resolve() : s.once("close", () => resolve())));
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe("LineServer limits", () => {
  it("a 60 KB line that arrives whole in one chunk is refused like one that arrives in pieces", async () => {
    const { messages, bad, client } = await serve();
    const c = await client();
    c.s.write(`${JSON.stringify({ big: "x".repeat(60_000) })}\n{"small":1}\n`);
    await until(() => messages.length === 1);
    expect(messages).toEqual([{ small: 1 }]);
    expect(bad).toEqual(["line longer than 16384 bytes: discarded"]);
    c.s.write(`{"big":"${"y".repeat(20_000)}`);
    await new Promise((r) => setTimeout(r, 50));
    c.s.write(`${"y".repeat(20_000)}"}\n{"small":2}\n`);
    await until(() => messages.length === 2);
    expect(messages[1]).toEqual({ small: 2 });
    expect(bad).toHaveLength(2);
  });

  it("a client flooding lines is answered once and dropped; a reader connected beside it stays and keeps receiving", async () => {
    const { server, messages, bad, client } = await serve({ maxLinesPerSecond: 200 });
    const reader = await client();
    const flooder = await client();
    flooder.s.write(`${'{"op":"keys","keys":"1"}\n'.repeat(3500)}`); // ~87 KB in one burst
    await closed(flooder.s);
    expect(messages.length).toBeLessThan(450); // the burst allowance (2 s worth), not the 3,500 sent
    expect(bad).toEqual(["more than 200 lines a second: disconnected"]);
    expect(flooder.lines().at(-1)).toEqual({ error: "more than 200 lines a second: disconnected" });
    expect(server.clientCount).toBe(1);
    server.broadcast({ after: true });
    await until(() => reader.lines().some((l) => l.after === true));
    expect(reader.s.destroyed).toBe(false);
  });

  it("a client at a sustained rate under the limit is served in full", async () => {
    const { messages, client } = await serve({ maxLinesPerSecond: 200 });
    const c = await client();
    for (let i = 0; i < 5; i++) {
      c.s.write(`${'{"n":1}\n'.repeat(100)}`);
      await new Promise((r) => setTimeout(r, 600));
    }
    await until(() => messages.length === 500);
    expect(c.s.destroyed).toBe(false);
  });
});
