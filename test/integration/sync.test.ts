// The server link against a real mosquitto (Debian package, started here): a bank in-process on the
// simulated hardware, the server as an MQTT 5 client, and mosquitto_pub / mosquitto_sub as a
// server-side engineer would use them.
import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventHash, verifyChain, type LedgerEvent } from "../../src/domain/events.js";
import { REPLIES, StatusMessage, StateMessage, TelemetryMessage, EventMessage, type CommandName } from "../../src/sync/contract.js";
import { openSealed, publicKeyB64, type SealedBox } from "../../src/sync/seal.js";
import { testBank, type TestBank } from "../helpers/bank.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer } from "../helpers/server.js";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sealKeys = generateKeyPairSync("x25519");

const broker = new Mosquitto({ persistence: true });
beforeAll(() => broker.start());
afterAll(() => broker.close());

const open: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

async function linkedBank(patch?: (cfg: Record<string, any>) => void): Promise<TestBank> {
  const b = await testBank((cfg) => {
    cfg.sync = {
      enabled: true,
      url: broker.url,
      reconnectBaseMs: 100,
      reconnectCapMs: 400,
      stateCoalesceMs: 50,
      window: 64,
      sealKey: publicKeyB64(sealKeys.publicKey),
    };
    patch?.(cfg);
  });
  open.push(b);
  return b;
}

async function server(opts: Parameters<TestServer["connect"]>[0] = {}): Promise<TestServer> {
  const s = await new TestServer(broker).connect(opts);
  open.push(s);
  return s;
}

async function online(b: TestBank): Promise<void> {
  for (let i = 0; i < 200 && b.rt.link?.info().state !== "online"; i++) await sleep(10);
  expect(b.rt.link?.info().state).toBe("online");
}

/** The person at the door: waits until the sim door has sprung open, then shuts it. */
async function closeWhenOpen(b: TestBank, compartment: string): Promise<void> {
  const lock = b.rt.bank.layoutOf(compartment).lock;
  for (let i = 0; i < 300 && b.hw.doors.read(lock) !== "open"; i++) await sleep(10);
  expect(b.hw.doors.read(lock)).toBe("open");
  b.hw.doors.set(lock, "closed");
}

function chainOf(s: TestServer, from: number, to: number): LedgerEvent[] {
  return Array.from({ length: to - from + 1 }, (_, i) => s.events.get(from + i)!);
}

describe("server link over mosquitto", () => {
  it("reserve → deposit → sealed code → pickup: replies and custody events arrive in order, the chain verifies", async () => {
    const srv = await server();
    const b = await linkedBank();
    await online(b);
    const status = await srv.waitFor((m) => m.topic === srv.t.status && m.text.includes("online"));
    const clock = { skewToleranceMs: 120_000, maxCommandLifetimeMs: 600_000, synchronized: expect.stringMatching(/^(yes|no|unknown)$/) };
    expect(StatusMessage.parse(JSON.parse(status.text))).toMatchObject({ state: "online", version: "test", instance: b.rt.link!.info().instance, clock });
    expect(Math.abs(StatusMessage.parse(JSON.parse(status.text)).clock!.now - Date.now())).toBeLessThan(10_000);
    expect(status.packet.retain || status.packet.topic === srv.t.status).toBe(true);

    const reserved = await srv.command("reserve", { parcel: "P-1", recipient: "p-1001", size: "M" });
    expect(REPLIES.reserve.parse(reserved)).toMatchObject({ ok: true, result: { parcel: "P-1" } });
    const compartment = (reserved as { result: { compartment: string } }).result.compartment;

    // The courier scans the parcel at the keypad: the reserved door opens, they close it.
    b.hw.keypad.keys("*2468#");
    b.hw.keypad.scan("P-1");
    await closeWhenOpen(b, compartment);
    const deposited = await srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.deposited"'));
    const ev = EventMessage.parse(JSON.parse(deposited.text));
    const code = openSealed(ev.data.sealedCode as SealedBox, sealKeys.privateKey, "P-1");
    expect(deposited.text).not.toContain(code);

    // The recipient types the code the server sent them.
    b.hw.keypad.keys("*");
    b.hw.keypad.keys(`${code}#`);
    await closeWhenOpen(b, compartment);
    await srv.waitFor((m) => m.topic === srv.t.events && m.text.includes('"parcel.picked_up"'));
    const head = b.rt.ledger.headSeq;
    await srv.waitForEvents(head);
    const all = chainOf(srv, 1, head);
    expect(verifyChain(all)).toMatchObject({ ok: true, checked: head });
    for (const e of all) expect(eventHash(e)).toBe(e.hash);
    const custody = all.filter((e) => e.parcel === "P-1" && !e.type.startsWith("door.")).map((e) => e.type);
    expect(custody).toEqual(["parcel.reserved", "compartment.reserved", "deposit.started", "parcel.deposited", "pickup.started", "parcel.picked_up"]);
    // The events reached the server in seq order.
    const order = srv.received.filter((m) => m.topic === srv.t.events).map((m) => (JSON.parse(m.text) as LedgerEvent).seq);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    await b.rt.link!.outbox.drained();
    expect(b.rt.ledger.counts().unpublished).toBe(0);

    // Retained state, coalesced: it shows the compartment free again.
    const state = await srv.waitFor(
      (m) => m.topic === srv.t.state && (JSON.parse(m.text) as StateMessage).compartments.find((c) => c.id === compartment)?.state === "free",
    );
    expect(StateMessage.parse(JSON.parse(state.text)).compartments).toHaveLength(b.rt.layout.length);
    // A burst of changes (a door rattled: 10 commits in a row) makes one retained state, not ten.
    const states = () => srv.received.filter((m) => m.topic === srv.t.state).length;
    const before = states();
    const rattled = b.rt.bank.layoutOf("A12").lock;
    for (let i = 0; i < 5; i++) {
      b.hw.doors.set(rattled, "open");
      b.hw.doors.set(rattled, "closed");
    }
    await sleep(400); // several coalescing windows (50 ms here)
    expect(states() - before).toBe(1);
    b.rt.link!.publishTelemetry(); // the interval is a minute; this is what it sends
    const telemetry = TelemetryMessage.parse(
      JSON.parse((await srv.waitFor((m) => m.topic === srv.t.telemetry && (JSON.parse(m.text) as TelemetryMessage).temperatures.some((t) => t.ok))).text),
    );
    expect(telemetry.devices.length).toBeGreaterThan(0);
    expect(telemetry.clock).toMatchObject({ ...clock, now: telemetry.ts });
    // The refrigerated compartment's sensor reading travels with the telemetry.
    expect(telemetry.temperatures).toEqual([expect.objectContaining({ compartment: "B01", ok: true, celsius: expect.any(Number) })]);
  });

  it("queues events while the broker is down and delivers them, gap-free, when it returns", async () => {
    // A persistent server session: it misses nothing while the broker restarts.
    const srv = await server({ clientId: "server-outage", clean: false, properties: { sessionExpiryInterval: 600 } });
    const b = await linkedBank();
    await online(b);
    const before = b.rt.ledger.headSeq;
    await srv.waitForEvents(before);
    await broker.stop();
    for (let i = 0; i < 200 && b.rt.link?.info().state === "online"; i++) await sleep(10);
    expect(b.rt.link?.info().state).toBe("offline");
    // The bank goes on working: three technician opens while the server is unreachable.
    for (const c of ["A02", "A03", "A04"]) {
      const r = await b.rt.technician.open(c, { user: "tech", reason: "outage test" });
      expect(r.opened).toBe(true);
      b.hw.doors.set(b.rt.bank.layoutOf(c).lock, "closed");
    }
    const head = b.rt.ledger.headSeq;
    expect(b.rt.ledger.counts().unpublished).toBeGreaterThanOrEqual(head - before);
    await broker.start();
    await srv.client.endAsync(true);
    // The server resumes its session: what the bank sent meanwhile was queued for it.
    const resumed = await server({ clientId: "server-outage", clean: false, properties: { sessionExpiryInterval: 600 } });
    await online(b);
    await resumed.waitForEvents(head, 10_000, before + 1);
    for (const [seq, e] of resumed.events) srv.events.set(seq, e);
    expect(verifyChain(chainOf(srv, 1, head))).toMatchObject({ ok: true });
    await b.rt.link!.outbox.drained();
    expect(b.rt.ledger.ackedSeq()).toBe(b.rt.ledger.headSeq);
  });

  it("executes the same command id once; refuses every bad payload with a reply and no change", async () => {
    const srv = await server();
    const b = await linkedBank();
    await online(b);
    const first = await srv.command("reserve", { parcel: "P-7", recipient: "p-1002", size: "S" }, { id: "dup-1" });
    const again = await srv.command("reserve", { parcel: "P-7", recipient: "p-1002", size: "S" }, { id: "dup-1" });
    expect(again).toEqual(first);
    expect(b.events("parcel.reserved").filter((e) => e.parcel === "P-7")).toHaveLength(1);

    const head = b.rt.ledger.headSeq;
    const now = Date.now();
    const bad: [string, string, string | null, string][] = [
      ["reserve", "not json at all", null, "bad_input"],
      ["reserve", JSON.stringify({ id: "bad-2", args: { parcel: "P-8", recipient: 12, size: "M" }, issuedAt: now }), "bad-2", "bad_input"],
      ["frobnicate", JSON.stringify({ id: "bad-3", args: {}, issuedAt: now }), "bad-3", "unknown_command"],
      ["snapshot", JSON.stringify({ id: "bad-4", args: {}, issuedAt: now, pad: "x".repeat(300_000) }), null, "payload_too_large"],
      ["reserve", JSON.stringify({ id: "bad-5", args: { parcel: "P-8", recipient: "p-1002", size: "M" }, issuedAt: now - 3_600_000, expiresAt: now - 1_800_000 }), "bad-5", "expired"],
    ];
    for (const [name, payload, id, code] of bad) {
      const reply = await srv.raw(name, payload, id);
      expect(reply, `${name} ${payload.slice(0, 40)}`).toMatchObject({ ok: false, error: { code } });
      if (name in REPLIES) expect(REPLIES[name as CommandName].safeParse(reply).success).toBe(true);
    }
    expect(b.rt.ledger.headSeq).toBe(head);
  });

  it("honours an MQTT 5 response topic in the bank's reply space, with correlation data", async () => {
    const srv = await server();
    const b = await linkedBank();
    await online(b);
    const inbox = `${srv.t.root}/reply/inbox/7`;
    const correlationData = Buffer.from("req-42");
    const got = srv.waitFor((m) => m.topic === inbox);
    await srv.client.publishAsync(`${srv.t.root}/cmd/snapshot`, JSON.stringify({ id: "rt-1", args: {}, issuedAt: Date.now() }), {
      qos: 1,
      properties: { responseTopic: inbox, correlationData },
    });
    const m = await got;
    expect(m.packet.properties?.correlationData?.toString()).toBe("req-42");
    expect(REPLIES.snapshot.parse(JSON.parse(m.text))).toMatchObject({ id: "rt-1", ok: true, result: { compartments: expect.any(Array) } });
  });

  it("works with mosquitto_pub / mosquitto_sub; status is retained and says offline after a clean stop", async () => {
    const b = await linkedBank();
    await online(b);
    const root = "lockers/hq/bank-01";
    const args = ["-h", "127.0.0.1", "-p", String(broker.port), "-V", "mqttv5"];
    const sub = spawn("mosquitto_sub", [...args, "-t", `${root}/reply/set-compartment`, "-C", "1", "-W", "15"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    sub.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    let exited = false;
    // "close", not "exit": the process may be gone before its stdout is read (seen under qemu).
    const done = new Promise((r) => sub.on("close", r)).then(() => (exited = true));
    // As a server engineer would: send it again until the answer comes (mosquitto_sub may not be
    // subscribed yet). The same id is executed once; a repeat is answered from the first reply.
    const cmd = { id: "cli-1", args: { compartment: "A05", enabled: false, reason: "door sticks" }, issuedAt: Date.now() };
    for (let i = 0; i < 30 && !exited; i++) {
      await run("mosquitto_pub", [...args, "-t", `${root}/cmd/set-compartment`, "-q", "1", "-m", JSON.stringify(cmd)]);
      await Promise.race([done, sleep(300)]);
    }
    await done;
    expect(b.events("compartment.disabled").filter((e) => e.compartment === "A05")).toHaveLength(1);
    const line = out.split("\n").find((l) => l.startsWith("{"));
    expect(REPLIES["set-compartment"].parse(JSON.parse(line ?? "null"))).toMatchObject({ id: "cli-1", ok: true, result: { id: "A05", enabled: false } });
    expect(b.rt.ledger.compartment("A05")?.enabled).toBe(false);

    const retained = await run("mosquitto_sub", [...args, "-t", `${root}/status`, "-C", "1", "-W", "5"]);
    expect(JSON.parse(retained.stdout)).toMatchObject({ state: "online" });
    await b.rt.stop();
    const after = await run("mosquitto_sub", [...args, "-t", `${root}/status`, "-C", "1", "-W", "5"]);
    expect(JSON.parse(after.stdout)).toMatchObject({ state: "offline", version: "test", instance: expect.any(String), clock: { now: expect.any(Number) } });
  });
});
