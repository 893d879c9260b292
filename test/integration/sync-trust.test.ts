// What a central server can rely on, checked as its engineer would: a real mosquitto, the compiled
// daemon with sync.serverPublicKey set to a key this file holds, commands signed as
// docs/asyncapi.yaml says (test/helpers/asyncapi.ts: nothing from src/ signs them), and the sim
// socket and lockerctl to see what the bank did. The points of the issue:
//
//   2 no replay · 6 every side effect authorized · 7 the server can tell what happened · 8 time
//
// Each test has its own device id, so retained status/state and broker sessions of one test never
// reach another.
import { execFile } from "node:child_process";
import { randomUUID, generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LedgerEvent } from "../../src/domain/events.js";
import type { ReplyEnvelope } from "../../src/sync/commands.js";
import { StateMessage, StatusMessage, TelemetryMessage, type CompartmentSnapshot } from "../../src/sync/contract.js";
import { signCommand } from "../helpers/asyncapi.js";
import { courierDeposit, removeDir, ROOT, SimClient, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer, type Received } from "../helpers/server.js";

const broker = new Mosquitto();
beforeAll(() => broker.start());
afterAll(() => broker.close());

const SITE = "hq";
/** Not the defaults (120 s, 600 s): what the bank says and does must come from its config. */
const SKEW_S = 30;
const LIFETIME_S = 300;
const YEAR_MS = 365 * 86_400_000;

const signKeys = generateKeyPairSync("ed25519");
/** sync.serverPublicKey: the 32 raw bytes of the public key, standard base64. */
const serverPublicKey = Buffer.from(signKeys.publicKey.export({ format: "jwk" }).x as string, "base64url").toString("base64");

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function daemon(device: string, opts: { dir?: string; locks?: Record<string, unknown> } = {}): Promise<Daemon> {
  const dir = opts.dir ?? tempDir();
  const d = await startDaemon({
    dir,
    patch: (cfg) => {
      cfg.device = { ...cfg.device, site: SITE, id: device };
      cfg.locks = { ...cfg.locks, ...opts.locks };
      cfg.sync = {
        ...cfg.sync,
        enabled: true,
        url: broker.url,
        reconnectBaseMs: 100,
        reconnectCapMs: 400,
        stateCoalesceMs: 50,
        serverPublicKey,
        clockSkewS: SKEW_S,
        maxCommandLifetimeS: LIFETIME_S,
      };
    },
  });
  cleanup.push(async () => {
    await stopDaemon(d);
    if (!opts.dir) removeDir(dir);
  });
  return d;
}

/** The server, subscribed to the bank's topics before the bank starts: it sees everything. */
async function server(device: string): Promise<TestServer> {
  const s = await new TestServer(broker, SITE, device).connect();
  cleanup.push(() => s.close());
  return s;
}

async function sim(d: Daemon): Promise<SimClient> {
  const s = await SimClient.connect(d.socket);
  cleanup.push(() => s.close());
  return s;
}

type Payload = { id: string; args: unknown; issuedAt: number; expiresAt?: number; sig?: string };

/** A command as the server signs it (valid for a minute unless told otherwise). */
function signed(device: string, name: string, args: unknown, times: { id?: string; issuedAt?: number; expiresAt?: number } = {}): Payload {
  const issuedAt = times.issuedAt ?? Date.now();
  const payload: Payload = { id: times.id ?? randomUUID(), args, issuedAt, expiresAt: times.expiresAt ?? issuedAt + 60_000 };
  return { ...payload, sig: signCommand(signKeys.privateKey, { site: SITE, device, name }, payload as Required<Omit<Payload, "sig">>) };
}

function unsigned(args: unknown): Payload {
  const issuedAt = Date.now();
  return { id: randomUUID(), args, issuedAt, expiresAt: issuedAt + 60_000 };
}

/** Publish (QoS 1, not retained) and wait for the reply with this id. */
function send(srv: TestServer, name: string, p: Payload, timeoutMs = 10_000): Promise<ReplyEnvelope> {
  return srv.raw(name, JSON.stringify(p), p.id, timeoutMs);
}

/** The same signature with one bit flipped: well-formed base64, and wrong. */
function flipBit(sig: string): string {
  const bytes = Buffer.from(sig, "base64");
  bytes[10]! ^= 0x01;
  return bytes.toString("base64");
}

const isOnline = (srv: TestServer, from = 0) => (m: Received) => m.topic === srv.t.status && srv.received.indexOf(m) >= from && m.text.includes('"online"');
const eventsOf = (srv: TestServer, type: string) => [...srv.events.values()].filter((e: LedgerEvent) => e.type === type).sort((a, b) => a.seq - b.seq);
const alarms = (srv: TestServer) => eventsOf(srv, "alarm.unauthorized_command").map((e) => e.data);
const unlocks = (s: SimClient, from: number) => s.since(from).filter((e) => e.ev === "unlock");

/** Jam (or free) a lock. The sim answers requests in order, so the state it returns means the jam is in. */
async function jam(s: SimClient, compartment: string, jammed: boolean): Promise<void> {
  s.send({ op: "jam", compartment, jammed });
  await s.state();
}

/** An (unsigned: it only reads) snapshot, then every event up to its seq: all sent before it was handled has been. */
async function barrier(srv: TestServer): Promise<number> {
  const r = await send(srv, "snapshot", unsigned({}));
  expect(r.ok).toBe(true);
  const seq = (r as { result: { seq: number } }).result.seq;
  await srv.waitForEvents(seq, 10_000);
  return seq;
}

async function event(srv: TestServer, pred: (e: LedgerEvent) => boolean, what: string): Promise<LedgerEvent> {
  const m = await srv.waitFor((m) => m.topic === srv.t.events && pred(JSON.parse(m.text) as LedgerEvent), 10_000, what);
  return JSON.parse(m.text) as LedgerEvent;
}

const run = promisify(execFile);
async function lockerctl(d: Daemon, ...args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, [join(ROOT, "dist/lockerd/lockerctl.js"), "--data", d.dataDir, "--json", ...args], { timeout: 15_000 });
  return JSON.parse(stdout);
}

describe("no replay (point 2)", () => {
  it("refuses a decade-long open and one dated ahead of the skew, opening nothing; a reused id is refused, an identical repeat answered from the record", async () => {
    const device = "bank-21";
    const srv = await server(device);
    const d = await daemon(device);
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    let mark = s.mark();

    const now = Date.now();
    const decade = signed(device, "open", { compartment: "A02", reason: "captured, kept for later" }, { issuedAt: now, expiresAt: now + 10 * YEAR_MS });
    const long = await send(srv, "open", decade);
    expect(long).toMatchObject({ id: decade.id, ok: false, error: { code: "bad_input", message: expect.stringContaining(`at most ${LIFETIME_S} s`) } });
    // Within the default tolerance (120 s), beyond the configured one.
    const ahead = signed(device, "open", { compartment: "A03", reason: "server clock ahead" }, { issuedAt: Date.now() + (SKEW_S + 30) * 1000 });
    const future = await send(srv, "open", ahead);
    expect(future).toMatchObject({ id: ahead.id, ok: false, error: { code: "expired", message: expect.stringMatching(/ahead of the bank.*tolerance 30 s/) } });

    await barrier(srv);
    expect(unlocks(s, mark)).toEqual([]);
    expect(eventsOf(srv, "admin.open")).toEqual([]);
    const refusedAlarm = (p: Payload, reply: ReplyEnvelope, reason: string) => ({
      name: "open",
      id: p.id,
      reason,
      message: (reply as { error: { message: string } }).error.message,
    });
    expect(alarms(srv)).toEqual([refusedAlarm(decade, long, "lifetime"), refusedAlarm(ahead, future, "future")]);

    // A good open, executed once.
    const once = signed(device, "open", { compartment: "A02", reason: "helpdesk check" });
    const first = await send(srv, "open", once);
    expect(first).toEqual({ id: once.id, ok: true, result: { compartment: "A02", parcel: null } });
    await s.waitFor((e) => e.ev === "door" && e.compartment === "A02" && e.state === "open", { from: mark });
    s.send({ op: "door", compartment: "A02", state: "closed" });
    await event(srv, (e) => e.type === "door.closed" && e.compartment === "A02", "A02 closed");
    mark = s.mark();

    // Its id with another payload (signed all the same): refused, with an alarm.
    const reused = signed(device, "open", { compartment: "A03", reason: "helpdesk check" }, { id: once.id });
    const refused = await send(srv, "open", reused);
    expect(refused).toMatchObject({ id: once.id, ok: false, error: { code: "bad_input", message: expect.stringContaining(once.id) } });
    // The identical message again (a server that lost the reply): the first reply, nothing run.
    expect(await send(srv, "open", once)).toEqual(first);

    await barrier(srv);
    expect(unlocks(s, mark)).toEqual([]);
    expect(eventsOf(srv, "admin.open").map((e) => [e.compartment, e.data.command])).toEqual([["A02", once.id]]);
    expect(alarms(srv)).toEqual([refusedAlarm(decade, long, "lifetime"), refusedAlarm(ahead, future, "future"), refusedAlarm(reused, refused, "replayed")]);
    // The ledger says the same (lockerctl events --json).
    const { events } = await lockerctl(d, "events", "--type", "alarm.unauthorized_command");
    expect((events as LedgerEvent[]).map((e) => e.data.reason)).toEqual(["lifetime", "future", "replayed"]);
  });
});

describe("every side effect is authorized (point 6)", () => {
  it("unsigned cancel, set-compartment and replay, and a snapshot with a flipped sig, are refused and change nothing; a second signed replay is busy", async () => {
    const device = "bank-22";
    const srv = await server(device);
    const d = await daemon(device);
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    const reserved = await send(srv, "reserve", signed(device, "reserve", { parcel: "P-6", recipient: "p-1001", size: "S" }));
    expect(reserved).toMatchObject({ ok: true, result: { parcel: "P-6" } });
    const held = (reserved as { result: { compartment: string } }).result.compartment;

    const head = await barrier(srv);
    const rows = async () => ((await lockerctl(d, "compartments")) as { compartments: Record<string, unknown>[] }).compartments.map(({ parcelAgeMs: _, ...row }) => row);
    const before = await rows();
    const simBefore = await s.state();
    expect(before.find((r) => r.id === held)).toMatchObject({ state: "reserved", parcel: "P-6" });
    const mark = srv.received.length;

    for (const [name, args] of [
      ["cancel", { parcel: "P-6" }],
      ["set-compartment", { compartment: "A01", enabled: false, reason: "unsigned attempt" }],
      ["replay", { fromSeq: 1 }],
    ] as const) {
      expect(await send(srv, name, unsigned(args)), name).toMatchObject({ ok: false, error: { code: "unauthorized", message: `${name} must be signed` } });
    }
    const snap = signed(device, "snapshot", {});
    expect(await send(srv, "snapshot", { ...snap, sig: flipBit(snap.sig!) })).toMatchObject({ ok: false, error: { code: "unauthorized" } });

    await barrier(srv);
    expect(await rows()).toEqual(before);
    expect(await s.state()).toEqual(simBefore);
    // Nothing re-published: every event heard since is new (the alarms).
    const heard = srv.received.slice(mark).filter((m) => m.topic === srv.t.events).map((m) => (JSON.parse(m.text) as LedgerEvent).seq);
    expect(heard.every((seq) => seq > head)).toBe(true);
    expect([...eventsOf(srv, "parcel.cancelled"), ...eventsOf(srv, "compartment.disabled")]).toEqual([]);
    expect(alarms(srv).map((a) => [a.name, a.reason])).toEqual([
      ["cancel", "unsigned"],
      ["set-compartment", "unsigned"],
      ["replay", "unsigned"],
      ["snapshot", "signature"],
    ]);

    // Signed, replay works; a second one within the interval is busy, says how long to wait, raises no alarm.
    const again = srv.received.length;
    const first = await send(srv, "replay", signed(device, "replay", { fromSeq: 1, limit: 5 }));
    expect(first).toMatchObject({ ok: true, result: { fromSeq: 1, count: 5 } });
    await srv.waitFor((m) => srv.received.indexOf(m) >= again && m.topic === srv.t.events && (JSON.parse(m.text) as LedgerEvent).seq === 5, 10_000, "replayed seq 5");
    const second = await send(srv, "replay", signed(device, "replay", { fromSeq: 1 }));
    expect(second).toMatchObject({ ok: false, error: { code: "busy", retryAfterMs: expect.any(Number) } });
    const wait = (second as { error: { retryAfterMs: number } }).error.retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(10_000);
    await barrier(srv);
    expect(alarms(srv)).toHaveLength(4);
  });
});

describe("the server can tell what happened (point 7)", () => {
  it("events a signed open causes name it: admin.open and pickup.started carry data.command", async () => {
    const device = "bank-23";
    const srv = await server(device);
    const d = await daemon(device);
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    const { compartment, parcel } = await courierDeposit(s);

    // The recipient forgot the code: the helpdesk opens remotely, with the parcel.
    let mark = s.mark();
    const pickup = signed(device, "open", { compartment, parcel, reason: "recipient forgot code, verified by phone", actor: "helpdesk-7" });
    expect(await send(srv, "open", pickup)).toEqual({ id: pickup.id, ok: true, result: { compartment, parcel } });
    await s.waitFor((e) => e.ev === "door" && e.compartment === compartment && e.state === "open", { from: mark });
    s.send({ op: "door", compartment, state: "closed" });
    await event(srv, (e) => e.type === "parcel.picked_up" && e.parcel === parcel, "parcel.picked_up");
    expect(eventsOf(srv, "pickup.started").filter((e) => e.parcel === parcel)).toEqual([expect.objectContaining({ compartment, data: expect.objectContaining({ command: pickup.id }) })]);

    // A plain audited open.
    mark = s.mark();
    const plain = signed(device, "open", { compartment: "A06", reason: "helpdesk check" });
    expect(await send(srv, "open", plain)).toMatchObject({ ok: true });
    await s.waitFor((e) => e.ev === "door" && e.compartment === "A06" && e.state === "open", { from: mark });
    s.send({ op: "door", compartment: "A06", state: "closed" });
    const opened = await event(srv, (e) => e.type === "admin.open" && e.compartment === "A06", "admin.open");
    expect(opened).toMatchObject({ actor: "server", data: { command: plain.id, reason: "helpdesk check" } });
    // What the bank did by itself (the deposit, the doors) names no command.
    await barrier(srv);
    expect(eventsOf(srv, "door.opened").every((e) => e.data.command === undefined)).toBe(true);
    expect(eventsOf(srv, "parcel.deposited").every((e) => e.data.command === undefined)).toBe(true);
  });

  it("SIGKILL while a signed open waits for its jammed door: after the restart the same command gets its outcome from the ledger, not busy", async () => {
    const device = "bank-24";
    const dir = tempDir();
    cleanup.push(() => removeDir(dir));
    const locks = { openVerifyMs: 10_000, retries: 0 };
    const srv = await server(device);
    let d = await daemon(device, { dir, locks });
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    await jam(s, "A05", true);
    const mark = s.mark();
    const open = signed(device, "open", { compartment: "A05", reason: "helpdesk check" });
    await srv.client.publishAsync(srv.t.cmd.open, JSON.stringify(open), { qos: 1 });
    await s.waitFor((e) => e.ev === "unlock" && e.compartment === "A05", { from: mark });
    await event(srv, (e) => e.type === "admin.open" && e.data.command === open.id, "admin.open of the command");
    await stopDaemon(d, "SIGKILL"); // mid-verify: 10 s to see the door open
    expect(srv.received.filter((m) => m.topic === srv.t.reply.open)).toEqual([]);

    const restart = srv.received.length;
    d = await daemon(device, { dir, locks });
    const s2 = await sim(d);
    await srv.waitFor(isOnline(srv, restart), 10_000, "online after the restart");
    const reply = await send(srv, "open", open);
    expect(reply).toMatchObject({ id: open.id, ok: false, error: { code: "shutting_down", message: expect.stringContaining("not open at the restart") } });
    await waitForOutput(d, /interrupted command answered from the ledger/);
    // Now on record: the same answer again, and no door was tried after the restart.
    expect(await send(srv, "open", open)).toEqual(reply);
    await barrier(srv);
    expect(unlocks(s2, 0)).toEqual([]);
    expect(eventsOf(srv, "admin.open").filter((e) => e.data.command === open.id)).toHaveLength(1);
  });

  it("a fault and a forced-open door show as held in the retained state and in snapshot; set-compartment enabled clears both", async () => {
    const device = "bank-25";
    const srv = await server(device);
    const d = await daemon(device);
    const s = await sim(d);
    await srv.waitFor(isOnline(srv), 10_000, "online");
    const byId = (cs: CompartmentSnapshot[], id: string) => cs.find((c) => c.id === id);
    const stateWhere = (pred: (cs: CompartmentSnapshot[]) => boolean, from: number) =>
      srv.waitFor((m) => m.topic === srv.t.state && srv.received.indexOf(m) >= from && pred(StateMessage.parse(JSON.parse(m.text)).compartments), 10_000, "state");

    // A03's lock does not open: lock_fault, out of service.
    await jam(s, "A03", true);
    const jammed = signed(device, "open", { compartment: "A03", reason: "helpdesk check" });
    expect(await send(srv, "open", jammed)).toMatchObject({ ok: false, error: { code: "lock_fault" } });
    await jam(s, "A03", false);
    // A04 is forced open (no pulse), then shut.
    s.send({ op: "door", compartment: "A04", state: "open" });
    await event(srv, (e) => e.type === "alarm.forced_open" && e.compartment === "A04", "alarm.forced_open");
    s.send({ op: "door", compartment: "A04", state: "closed" });

    const heldNow = (cs: CompartmentSnapshot[]) => byId(cs, "A03")?.held === "fault" && byId(cs, "A04")?.held === "inspection" && byId(cs, "A04")?.door === "closed";
    await stateWhere(heldNow, 0);
    // Retained: a server subscribing now gets it at once.
    const late = await new TestServer(broker, SITE, device).connect();
    cleanup.push(() => late.close());
    const retained = await late.waitFor((m) => m.topic === late.t.state, 5000, "retained state");
    expect(retained.packet.retain).toBe(true);
    const cs = StateMessage.parse(JSON.parse(retained.text)).compartments;
    expect(byId(cs, "A03")).toMatchObject({ state: "fault", held: "fault" });
    expect(byId(cs, "A04")).toMatchObject({ state: "free", held: "inspection" });
    expect(byId(cs, "A05")).toMatchObject({ state: "free", held: null });
    const snap = await send(srv, "snapshot", unsigned({}));
    const snapped = StateMessage.parse((snap as { result: unknown }).result).compartments;
    expect(byId(snapped, "A03")).toMatchObject({ state: "fault", held: "fault" });
    expect(byId(snapped, "A04")).toMatchObject({ held: "inspection" });

    const mark = srv.received.length;
    const fix = signed(device, "set-compartment", { compartment: "A03", enabled: true, reason: "lock replaced" });
    expect(await send(srv, "set-compartment", fix)).toMatchObject({ ok: true, result: { id: "A03", state: "free", enabled: true, held: null } });
    const cleared = await event(srv, (e) => e.type === "compartment.fault_cleared" && e.compartment === "A03", "compartment.fault_cleared");
    expect(cleared.data.command).toBe(fix.id);
    const inspected = signed(device, "set-compartment", { compartment: "A04", enabled: true, reason: "inspected, nothing missing" });
    expect(await send(srv, "set-compartment", inspected)).toMatchObject({ ok: true, result: { id: "A04", state: "free", held: null } });
    const alarmCleared = await event(srv, (e) => e.type === "alarm.cleared" && e.compartment === "A04", "alarm.cleared");
    expect(alarmCleared.data).toMatchObject({ alarm: "forced_open", command: inspected.id });
    await stateWhere((cs) => byId(cs, "A03")?.held === null && byId(cs, "A04")?.held === null && byId(cs, "A03")?.state === "free", mark);
  });
});

describe("time (point 8)", () => {
  it("the retained status and the telemetry carry the bank's clock and the configured tolerances", async () => {
    const device = "bank-26";
    const srv = await server(device);
    await daemon(device);
    const synchronized = existsSync("/run/systemd/timesync/synchronized") ? "yes" : existsSync("/run/systemd/timesync") ? "no" : "unknown";
    const clock = { synchronized, skewToleranceMs: SKEW_S * 1000, maxCommandLifetimeMs: LIFETIME_S * 1000 };

    const status = StatusMessage.parse(JSON.parse((await srv.waitFor(isOnline(srv), 10_000, "online")).text));
    expect(status.clock).toMatchObject(clock);
    expect(Math.abs(status.clock!.now - Date.now())).toBeLessThan(10_000);
    const telemetry = TelemetryMessage.parse(JSON.parse((await srv.waitFor((m) => m.topic === srv.t.telemetry, 10_000, "telemetry")).text));
    expect(telemetry.clock).toEqual({ ...clock, now: telemetry.ts });

    // Retained: a server that subscribes later reads the same at once.
    const late = await new TestServer(broker, SITE, device).connect();
    cleanup.push(() => late.close());
    const retained = await late.waitFor((m) => m.topic === late.t.status, 5000, "retained status");
    expect(retained.packet.retain).toBe(true);
    expect(StatusMessage.parse(JSON.parse(retained.text))).toMatchObject({ state: "online", clock });
  });
});
