// A central-server engineer attacks the bank through the broker (a real mosquitto, the compiled
// daemon): a broker lost while a command runs, a retained command, response topics outside the
// bank's reply space, and two banks with one identity. Each test has its own device id, so broker
// sessions (clean: false) and retained messages of one test never reach another.
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { StatusResult } from "../../src/admin/protocol.js";
import { AdminClient } from "../../src/cli/client.js";
import type { LedgerEvent } from "../../src/domain/events.js";
import type { ReplyEnvelope } from "../../src/sync/commands.js";
import { canonicalCommand } from "../../src/sync/contract.js";
import { publicKeyB64 } from "../../src/sync/seal.js";
import { removeDir, ROOT, SimClient, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer, type Received } from "../helpers/server.js";
import { slow } from "../helpers/slow.js";

const broker = new Mosquitto({ persistence: true });
beforeAll(() => broker.start());
afterAll(() => broker.close());

const signKeys = generateKeyPairSync("ed25519");
const SITE = "hq";

/** Everything a test opened, closed in reverse after it (also when it failed). */
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

type SyncView = { duplicateIdentity?: { since: number; takeovers: number; evidence: string } | null; lastError?: string | null; instance?: string; connected: boolean };

function patchFor(device: string, extra: (cfg: Record<string, any>) => void = () => undefined) {
  return (cfg: Record<string, any>) => {
    cfg.device = { ...cfg.device, site: SITE, id: device };
    cfg.sync = { enabled: true, url: broker.url, reconnectBaseMs: 100, reconnectCapMs: 400, stateCoalesceMs: 50, serverPublicKey: publicKeyB64(signKeys.publicKey) };
    extra(cfg);
  };
}

async function daemon(device: string, opts: { dir?: string; extra?: (cfg: Record<string, any>) => void } = {}): Promise<Daemon> {
  const dir = opts.dir ?? tempDir();
  const d = await startDaemon({ dir, patch: patchFor(device, opts.extra) });
  cleanup.push(async () => {
    await stopDaemon(d);
    if (!opts.dir) removeDir(dir);
  });
  return d;
}

async function server(device: string, opts: Parameters<TestServer["connect"]>[0] = {}): Promise<TestServer> {
  const s = await new TestServer(broker, SITE, device).connect(opts);
  cleanup.push(() => s.close());
  return s;
}

async function sim(d: Daemon): Promise<SimClient> {
  const s = await SimClient.connect(d.socket);
  cleanup.push(() => s.close());
  return s;
}

async function admin(d: Daemon, cmd: "status" | "sync" | "events", args: Record<string, unknown> = {}): Promise<unknown> {
  const c = await AdminClient.connect(join(d.dataDir, "admin.sock"));
  try {
    return await c.request(cmd, args, "test");
  } finally {
    c.close();
  }
}

/** The daemon's own ledger: its events of one type. */
async function ledgerEvents(d: Daemon, type: string): Promise<LedgerEvent[]> {
  return ((await admin(d, "events", { type, limit: 100 })) as { events: LedgerEvent[] }).events;
}

function lockerctl(d: Daemon, ...args: string[]): string {
  const r = spawnSync(process.execPath, [join(ROOT, "dist/lockerd/lockerctl.js"), "--data", d.dataDir, ...args], { encoding: "utf8", timeout: 15_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

/** A signed command payload for `device`, valid for a minute. */
function signed(device: string, name: string, id: string, args: unknown): string {
  const issuedAt = Date.now();
  const payload = { id, args, issuedAt, expiresAt: issuedAt + 60_000 };
  const msg = canonicalCommand({ site: SITE, device, name, ...payload });
  return JSON.stringify({ ...payload, sig: sign(null, msg, signKeys.privateKey).toString("base64") });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isOnline = (srv: TestServer, from = 0) => (m: Received) => m.topic === srv.t.status && srv.received.indexOf(m) >= from && m.text.includes('"online"');
const replyTo = (srv: TestServer, id: string | null, from = 0) => (m: Received) =>
  m.topic.startsWith(`${srv.t.root}/reply/`) && srv.received.indexOf(m) >= from && (JSON.parse(m.text) as ReplyEnvelope).id === id;
const events = (srv: TestServer, type: string) => [...srv.events.values()].filter((e: LedgerEvent) => e.type === type);

/** Publish a snapshot and wait for its reply and every event up to its seq: all sent before it has been handled. */
async function barrier(srv: TestServer): Promise<void> {
  const r = await srv.command("snapshot", {}, {}, 10_000);
  expect(r.ok).toBe(true);
  await srv.waitForEvents((r as { result: { seq: number } }).result.seq, 10_000);
}

describe("the bank under attack through the broker", () => {
  it("a broker lost while an open verifies its door: the daemon lives, and the re-sent id is answered from the ledger", async () => {
    const device = "bank-11";
    const d = await daemon(device, { extra: (cfg) => (cfg.locks = { ...cfg.locks, openVerifyMs: 1200, retries: 1 }) });
    // A persistent session: what the bank publishes while this server reconnects waits for it.
    const session = { clientId: "server-11", clean: false, properties: { sessionExpiryInterval: 600 } };
    const srv = await server(device, session);
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    s.send({ op: "jam", compartment: "A02", jammed: true });
    await s.state(); // the sim answers in order: the jam is in place before the command goes out
    const m = s.mark();
    const open = signed(device, "open", "open-lost", { compartment: "A02", reason: "forgot my code" });
    await srv.client.publishAsync(srv.t.cmd.open, open, { qos: 1 });
    await s.waitFor((e) => e.ev === "unlock" && e.compartment === "A02", { from: m });
    await srv.close();
    await broker.stop(); // while the door is being verified (and pulsed again)
    cleanup.push(() => broker.start()); // for the next test, should this one fail before the restart

    // The open gives up on the jammed door; its reply has nowhere to go. The daemon must not die.
    await until("the open to give up (or the daemon to exit)", () => /reply.*(held|kept|dropped)/.test(d.output()) || d.child.exitCode !== null, 15_000);
    expect(d.child.exitCode, d.output().slice(-3000)).toBeNull();
    expect((await s.state()).find((c) => c.id === "A02")).toBeDefined(); // the sim socket answers
    const status = (await admin(d, "status")) as StatusResult;
    expect(status.sync.connected).toBe(false);

    await broker.start();
    cleanup.pop();
    const again = await server(device, session);
    // The reply that waited for the link, then the same id sent again: answered from the ledger.
    const held = JSON.parse((await again.waitFor(replyTo(again, "open-lost"), 10_000, "the held reply")).text) as ReplyEnvelope;
    expect(held).toMatchObject({ id: "open-lost", ok: false, error: { code: "lock_fault" } });
    const reply = await again.raw("open", open, "open-lost", 10_000);
    expect(reply).toEqual(held);
    const unlocks = s.since(m).filter((e) => e.ev === "unlock");
    expect(unlocks).toHaveLength(2); // the first pulse and one retry; the re-sent id pulsed nothing
    expect(d.child.exitCode).toBeNull();
  });

  it("a retained command never acts: refused with a reply and an alarm, not again after a reconnect; an empty retained one clears it silently", async () => {
    const device = "bank-12";
    const srv = await server(device);
    const dir = tempDir();
    cleanup.push(() => removeDir(dir));
    // Left on the broker before the bank ever connects.
    await srv.client.publishAsync(srv.t.cmd.open, signed(device, "open", "ret-1", { compartment: "A03", reason: "retained attack" }), { qos: 1, retain: true });
    let d = await daemon(device, { dir });
    const refused = await srv.waitFor(replyTo(srv, "ret-1"), 10_000, "refusal of the retained open");
    expect(refused.topic).toBe(srv.t.reply.open);
    expect(JSON.parse(refused.text)).toMatchObject({ id: "ret-1", ok: false, error: { code: "unauthorized", message: expect.stringMatching(/retain/) } });
    await barrier(srv);
    const alarms = () => events(srv, "alarm.unauthorized_command").filter((e) => e.data.reason === "retained");
    expect(alarms()).toEqual([expect.objectContaining({ data: { name: "open", id: "ret-1", reason: "retained", message: expect.stringMatching(/retain=false/) } })]);
    expect(events(srv, "admin.open")).toEqual([]);

    // A reconnect (the daemon restarts, its broker session resumes): nothing happens again.
    await stopDaemon(d);
    let mark = srv.received.length;
    d = await daemon(device, { dir });
    await srv.waitFor(isOnline(srv, mark), 10_000, "online after the restart");
    await barrier(srv);
    expect(srv.received.slice(mark).filter(replyTo(srv, "ret-1"))).toEqual([]);
    expect(alarms()).toHaveLength(1);
    expect(events(srv, "admin.open")).toEqual([]);
    const s = await sim(d);
    expect(s.events.filter((e) => e.ev === "unlock")).toEqual([]);

    // The server clears it: an empty retained message. No reply, no alarm; the retained one is gone.
    mark = srv.received.length;
    await srv.client.publishAsync(srv.t.cmd.open, "", { qos: 1, retain: true });
    await waitForOutput(d, /empty command message ignored/);
    await barrier(srv);
    expect(srv.received.slice(mark).filter((m) => m.topic.startsWith(`${srv.t.root}/reply/open`))).toEqual([]);
    expect(alarms()).toHaveLength(1);
    const late = await new TestServer(broker, SITE, device).connect();
    cleanup.push(() => late.close());
    await late.client.publishAsync(`${late.t.root}/barrier`, "x", { qos: 1 });
    await late.waitFor((m) => m.topic === `${late.t.root}/barrier`);
    expect(late.received.filter((m) => m.topic === late.t.cmd.open)).toEqual([]);
  });

  it("replies go to the bank's reply space only: a wildcard, another topic of the bank or another bank's command topic get the default reply topic", async () => {
    const device = "bank-13";
    const d = await daemon(device);
    const srv = await server(device);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    await srv.client.subscribeAsync(["evil/#", "lockers/hq/bank-02/#"], { qos: 1 });
    const mark = srv.received.length;
    const ask = async (id: string, responseTopic: string) => {
      const correlationData = Buffer.from(`corr-${id}`);
      const got = srv.waitFor(replyTo(srv, id, mark), 10_000, `reply ${id}`);
      await srv.client.publishAsync(srv.t.cmd.snapshot, JSON.stringify({ id, args: {}, issuedAt: Date.now() }), { qos: 1, properties: { responseTopic, correlationData } });
      const m = await got;
      expect(m.packet.properties?.correlationData?.toString(), id).toBe(`corr-${id}`);
      return m.topic;
    };
    expect(await ask("rt-wild", "evil/#")).toBe(srv.t.reply.snapshot);
    expect(await ask("rt-status", srv.t.status)).toBe(srv.t.reply.snapshot);
    expect(await ask("rt-other", "lockers/hq/bank-02/cmd/reserve")).toBe(srv.t.reply.snapshot);
    expect(await ask("rt-sys", "$SYS/x")).toBe(srv.t.reply.snapshot);
    expect(await ask("rt-plus", `${srv.t.root}/reply/+`)).toBe(srv.t.reply.snapshot);
    expect(await ask("rt-inbox", `${srv.t.root}/reply/inbox/7`)).toBe(`${srv.t.root}/reply/inbox/7`);
    // Nothing landed elsewhere, and the bank stayed online (no Last Will).
    const since = srv.received.slice(mark);
    expect(since.filter((m) => m.topic.startsWith("evil/") || m.topic.startsWith("lockers/hq/bank-02/"))).toEqual([]);
    expect(since.filter((m) => m.topic === srv.t.status)).toEqual([]);
    expect(((await admin(d, "sync")) as SyncView).connected).toBe(true);
    expect(d.output()).toMatch(/response topic/);
  });

  it("two banks with one identity: both notice, back off, say so in status; the one left becomes stable", { timeout: slow(60_000) }, async () => {
    const device = "bank-14";
    const srv = await server(device);
    const a = await daemon(device);
    await srv.waitFor(isOnline(srv), 10_000, "A online");
    const b = await daemon(device);
    const duplicate = async (d: Daemon) => ((await admin(d, "sync")) as SyncView).duplicateIdentity ?? null;
    await until("both to notice the duplicate identity", async () => (await duplicate(a)) !== null && (await duplicate(b)) !== null, 15_000);
    expect(((await admin(b, "sync")) as SyncView).lastError).toMatch(/another bank uses lockers\/hq\/bank-14/);
    const status = (await admin(a, "status")) as StatusResult;
    expect(status.alarms).toEqual(expect.arrayContaining([expect.objectContaining({ kind: "duplicate_identity" })]));
    const human = lockerctl(a, "status");
    expect(human).toMatch(/duplicate_identity .*another bank connects as hq\/bank-14/);
    expect(human).toMatch(/DUPLICATE IDENTITY since/);
    // lockerctl shows what the sync view carries, also as JSON.
    const view = JSON.parse(lockerctl(a, "--json", "sync")) as SyncView;
    expect(view).toMatchObject({ connected: expect.any(Boolean), instance: expect.any(String), lastError: expect.stringMatching(/another bank uses/) });
    expect(view.duplicateIdentity).toMatchObject({ since: expect.any(Number), takeovers: expect.any(Number), evidence: expect.any(String) });
    expect(lockerctl(a, "sync")).toMatch(new RegExp(`instance ${view.instance}[\\s\\S]*DUPLICATE IDENTITY since`));
    // The server can tell them apart: two instance ids said "online".
    const instances = new Set(srv.received.filter(isOnline(srv)).map((m) => (JSON.parse(m.text) as { instance?: string }).instance));
    expect([...instances].filter(Boolean)).toHaveLength(2);
    // Each bank has the alarm on record, once, naming its own instance.
    for (const d of [a, b]) {
      const { instance } = (await admin(d, "sync")) as SyncView;
      const raised = await ledgerEvents(d, "alarm.duplicate_identity");
      expect(raised).toEqual([expect.objectContaining({ data: { clientId: "lockerd-hq-bank-14", evidence: expect.any(String), takeovers: expect.any(Number), since: expect.any(Number), instance } })]);
      expect(raised[0]!.data.takeovers).toBeGreaterThanOrEqual(3);
    }

    // Backed off: a handful of connects in three seconds, not hundreds.
    const onlines = () => srv.received.filter(isOnline(srv)).length;
    const before = onlines();
    await new Promise((r) => setTimeout(r, 3000)); // the window the connects are counted over
    expect(onlines() - before).toBeLessThanOrEqual(8);

    // B goes away: A comes back, stays, and the alarm clears.
    await stopDaemon(b);
    await until("A alone, stable, with the alarm cleared", async () => {
      const v = (await admin(a, "sync")) as SyncView;
      return v.connected && !v.duplicateIdentity;
    }, 20_000);
    const alone = (await admin(a, "sync")) as SyncView;
    expect(alone.instance).toEqual(expect.any(String));
    expect(alone.lastError).toBeNull();
    await waitForOutput(a, /identity conflict over/);
    // Cleared on record, and both reached the server (A's seq stream, A's instance).
    const [raised] = await ledgerEvents(a, "alarm.duplicate_identity");
    const cleared = (await ledgerEvents(a, "alarm.cleared")).filter((e) => e.data.alarm === "duplicate_identity");
    expect(cleared).toEqual([expect.objectContaining({ data: { alarm: "duplicate_identity", since: raised!.data.since, takeovers: expect.any(Number) } })]);
    expect(cleared[0]!.seq).toBeGreaterThan(raised!.seq);
    for (const e of [raised!, cleared[0]!]) await srv.waitFor((m) => m.topic === srv.t.events && (JSON.parse(m.text) as LedgerEvent).id === e.id, 10_000, e.type);
    expect(lockerctl(a, "status")).not.toMatch(/duplicate_identity|DUPLICATE IDENTITY/);
  });
});
