// The link on any fleet broker (issue 15), against real brokers started here: mosquitto in MQTT 5
// and 3.1.1, a single nats-server (JetStream, MQTT 3.1.1 only), and a gate (test/helpers/gate.ts)
// that closes the connection without a word where RabbitMQ 3.10 or a broker in trouble does.
//
//   sync.protocol 5 | 4 | "auto" (per endpoint, remembered in the ledger) · sync.url a list of
//   endpoints, tried in turn · lastError says why a connection the broker closed went down
//
// The three-node clusters (NATS, RabbitMQ) are in test/brokers/.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SyncStatus } from "../../src/admin/protocol.js";
import { AdminClient } from "../../src/cli/client.js";
import { REPLIES } from "../../src/sync/contract.js";
import type { MqttClient } from "mqtt";
import { freePort } from "../../scripts/broker.js";
import { NatsCluster } from "../../scripts/brokers.js";
import { testBank, type TestBank } from "../helpers/bank.js";
import { removeDir, ROOT, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { Gate, PACKET } from "../helpers/gate.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer, type Received } from "../helpers/server.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mosquitto = new Mosquitto({ persistence: true });
const nats = new NatsCluster({ nodes: 1 });
beforeAll(async () => {
  await Promise.all([mosquitto.start(), nats.start()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([mosquitto.close(), nats.close()]);
});

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

let devices = 0;
/** A device id of its own per bank: broker sessions and retained messages of one test stay there. */
const nextDevice = () => `bank-p${++devices}`;

function syncConfig(url: string | string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { enabled: true, url, reconnectBaseMs: 100, reconnectCapMs: 400, stateCoalesceMs: 50, window: 64, ...extra };
}

/** A bank in this process; with `dir`, one that restarts on it (the caller removes it). */
async function linkedBank(device: string, sync: Record<string, unknown>, dir?: string): Promise<TestBank> {
  const b = await testBank((cfg) => {
    cfg.device = { ...cfg.device, id: device };
    cfg.sync = sync;
  }, dir);
  cleanup.push(() => (dir ? b.rt.stop() : b.close()));
  return b;
}

async function server(broker: ConstructorParameters<typeof TestServer>[0], device: string, opts: Parameters<TestServer["connect"]>[0] = {}): Promise<TestServer> {
  const s = await new TestServer(broker, "hq", device).connect(opts);
  cleanup.push(() => s.close());
  return s;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function online(b: TestBank, timeoutMs = 10_000): Promise<void> {
  await until(`the link online (${b.rt.link?.info().lastError ?? "no error"})`, () => b.rt.link?.info().state === "online", timeoutMs);
}

const isOnline = (srv: TestServer, from = 0) => (m: Received) => m.topic === srv.t.status && srv.received.indexOf(m) >= from && m.text.includes('"online"');

async function daemon(device: string, sync: Record<string, unknown>): Promise<Daemon> {
  const dir = tempDir();
  const d = await startDaemon({
    dir,
    patch: (cfg) => {
      cfg.device = { ...cfg.device, id: device };
      cfg.sync = sync;
    },
  });
  cleanup.push(async () => {
    await stopDaemon(d);
    removeDir(dir);
  });
  return d;
}

async function admin(d: Daemon, command: "status" | "sync"): Promise<unknown> {
  const c = await AdminClient.connect(join(d.dataDir, "admin.sock"));
  try {
    return await c.request(command, {}, "test");
  } finally {
    c.close();
  }
}

function lockerctl(d: Daemon, ...args: string[]): string {
  const r = spawnSync(process.execPath, [join(ROOT, "dist/lockerd/lockerctl.js"), "--data", d.dataDir, ...args], { encoding: "utf8", timeout: 15_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe("brokers that speak MQTT 3.1.1 only", () => {
  it("nats-server: with sync.protocol 4 the bank is online, its events arrive and a command is answered on reply/<name>", async () => {
    const device = nextDevice();
    const srv = await server(nats, device);
    const b = await linkedBank(device, syncConfig(nats.url, { protocol: 4 }));
    await online(b);
    await srv.waitFor(isOnline(srv), 5000, "status online");
    const reply = await srv.command("snapshot", {});
    expect(REPLIES.snapshot.parse(reply)).toMatchObject({ ok: true });
    await srv.waitForEvents(b.rt.ledger.headSeq);
    expect(b.rt.link!.info()).toMatchObject({ broker: nats.url, protocol: "3.1.1" });
  });

  it("nats-server refuses MQTT 5 (the default): the bank says so and what to set, in its log and lastError", async () => {
    const d = await daemon(nextDevice(), syncConfig(nats.url));
    await waitForOutput(d, /Unacceptable protocol version/, 10_000);
    const view = (await admin(d, "sync")) as SyncStatus;
    expect(view.connected).toBe(false);
    expect(view.lastError).toMatch(/refuses MQTT 5[\s\S]*sync\.protocol/);
    expect(lockerctl(d, "sync")).toMatch(/last error: .*refuses MQTT 5/);
  });
});

describe("a broker that closes the connection without an MQTT error", () => {
  it("closed on CONNECT (RabbitMQ 3.10 and MQTT 5): logged with what was happening, and lastError in lockerctl sync and status", async () => {
    const gate = new Gate(mosquitto.port, { close: (p) => p.type === PACKET.CONNECT && p.protocolLevel === 5 });
    await gate.start();
    cleanup.push(() => gate.close());
    const d = await daemon(nextDevice(), syncConfig(gate.url));
    await waitForOutput(d, /closed the connection/, 10_000);
    const view = (await admin(d, "sync")) as SyncStatus;
    expect(view.connected).toBe(false);
    expect(view.lastError).toBe(`${gate.url} (MQTT 5): the broker closed the connection after CONNECT, before CONNACK, without an MQTT error: a broker that speaks only MQTT 3.1.1 does this (RabbitMQ 3.x); set sync.protocol to "auto" or 4`);
    expect(view.lastError).toMatch(/sync\.protocol/);
    const human = lockerctl(d, "sync");
    expect(human).toMatch(/NOT connected[\s\S]*last error: [\s\S]*before CONNACK/);
    for (const line of human.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(lockerctl(d, "status")).toMatch(/last error: [\s\S]*before CONNACK/);
  });
});

describe('sync.protocol "auto"', () => {
  it("nats-server: MQTT 5 refused, 3.1.1 at once on the same endpoint, remembered in the ledger: the next start asks 3.1.1 first", async () => {
    const gate = new Gate(Number(new URL(nats.url).port), { close: () => false }); // counts CONNECTs only
    await gate.start();
    cleanup.push(() => gate.close());
    const device = nextDevice();
    const dir = tempDir();
    cleanup.push(() => removeDir(dir));
    const srv = await server(nats, device);
    const b = await linkedBank(device, syncConfig(gate.url, { protocol: "auto" }), dir);
    await online(b);
    expect(gate.connects).toEqual([5, 4]);
    expect(b.rt.link!.info()).toMatchObject({ protocol: "3.1.1", lastError: null });
    expect(JSON.parse(b.rt.ledger.meta("sync.protocols")!)).toEqual({ [gate.url]: { version: 4, at: expect.any(Number) } });
    expect((await srv.command("snapshot", {})).ok).toBe(true);
    await b.rt.stop();
    const again = await linkedBank(device, syncConfig(gate.url, { protocol: "auto" }), dir);
    await online(again);
    expect(gate.connects).toEqual([5, 4, 4]);
  });

  it("a broker that closes an MQTT 5 CONNECT without a word (RabbitMQ 3.10): online in 3.1.1, no error left", async () => {
    const gate = new Gate(mosquitto.port, { close: (p) => p.type === PACKET.CONNECT && p.protocolLevel === 5 });
    await gate.start();
    cleanup.push(() => gate.close());
    const device = nextDevice();
    const srv = await server(mosquitto, device, { protocolVersion: 4 });
    const b = await linkedBank(device, syncConfig(gate.url, { protocol: "auto" }));
    await online(b);
    expect(gate.closed).toEqual([{ type: PACKET.CONNECT, protocolLevel: 5 }]);
    expect(b.rt.link!.info()).toMatchObject({ protocol: "3.1.1", lastError: null, broker: gate.url });
    expect((await srv.command("snapshot", {})).ok).toBe(true);
  });

  it("mosquitto speaks 5: the bank stays on MQTT 5", async () => {
    const b = await linkedBank(nextDevice(), syncConfig(mosquitto.url, { protocol: "auto" }));
    await online(b);
    expect(b.rt.link!.info()).toMatchObject({ protocol: "5", lastError: null });
  });
});

describe("MQTT 3.1.1 on mosquitto: what the contract keeps", () => {
  /** The bank's socket dies (no DISCONNECT): the broker publishes its Last Will; it reconnects and subscribes again. */
  function dropConnection(b: TestBank): void {
    (b.rt.link as unknown as { client: MqttClient }).client.stream.destroy();
  }

  it("no MQTT 5 properties; replies on reply/<name> by id (a response topic cannot reach it); the Last Will; a command queued while it was stopped", async () => {
    const device = nextDevice();
    const dir = tempDir();
    cleanup.push(() => removeDir(dir));
    const srv = await server(mosquitto, device); // MQTT 5: it would see properties if the bank sent any
    const srv4 = await server(mosquitto, device, { protocolVersion: 4 });
    const b = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }), dir);
    await online(b);
    const status = await srv.waitFor(isOnline(srv), 5000, "status online");
    expect(status.packet.properties?.contentType).toBeUndefined();
    await srv.waitForEvents(b.rt.ledger.headSeq);
    expect(srv.received.find((m) => m.topic === srv.t.events)!.packet.properties?.contentType).toBeUndefined();

    expect(REPLIES.snapshot.parse(await srv4.command("snapshot", {}, { id: "v4-1" }))).toMatchObject({ id: "v4-1", ok: true });
    // A server's response topic is an MQTT 5 property: the bank never sees it and answers on reply/<name>.
    const mark = srv.received.length;
    await srv.client.publishAsync(`${srv.t.root}/cmd/snapshot`, JSON.stringify({ id: "v4-rt", args: {}, issuedAt: Date.now() }), { qos: 1, properties: { responseTopic: `${srv.t.root}/reply/inbox/1` } });
    const reply = await srv.waitFor((m) => srv.received.indexOf(m) >= mark && m.topic.startsWith(`${srv.t.root}/reply/`) && m.text.includes('"v4-rt"'), 5000, "reply");
    expect(reply.topic).toBe(`${srv.t.root}/reply/snapshot`);
    expect(JSON.parse(reply.text)).toMatchObject({ id: "v4-rt", ok: true });

    // The Last Will: offline without clock, then online again.
    const beforeWill = srv.received.length;
    dropConnection(b);
    const will = await srv.waitFor((m) => srv.received.indexOf(m) >= beforeWill && m.topic === srv.t.status && m.text.includes('"offline"'), 5000, "the Last Will");
    expect(JSON.parse(will.text)).toMatchObject({ state: "offline", instance: b.rt.link!.info().instance });
    expect(JSON.parse(will.text).clock).toBeUndefined();
    await srv.waitFor(isOnline(srv, beforeWill), 5000, "online again");

    // Stopped: a command sent meanwhile waits in its session (Clean Session 0) and is answered after the start.
    await b.rt.stop();
    const queued = srv4.command("set-compartment", { compartment: "A05", enabled: false, reason: "queued while offline" }, { id: "v4-queued" }, 15_000);
    await sleep(300);
    const again = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }), dir);
    expect(await queued).toMatchObject({ id: "v4-queued", ok: true });
    expect(again.rt.ledger.compartment("A05")?.enabled).toBe(false);
  });

  it("a retained command is refused once, with its reply and alarm, though every subscribe hands it out again (no Retain Handling in 3.1.1)", async () => {
    const device = nextDevice();
    const dir = tempDir();
    cleanup.push(() => removeDir(dir));
    const srv = await server(mosquitto, device, { protocolVersion: 4 });
    await srv.client.publishAsync(`${srv.t.root}/cmd/open`, JSON.stringify({ id: "ret-v4", args: { compartment: "A03", reason: "retained attack" }, issuedAt: Date.now() }), { qos: 1, retain: true });
    cleanup.push(() => srv.client.publishAsync(`${srv.t.root}/cmd/open`, "", { qos: 1, retain: true }).then(() => undefined));
    let b = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }), dir);
    await online(b);
    const replies = () => srv.received.filter((m) => m.topic === `${srv.t.root}/reply/open` && m.text.includes('"ret-v4"'));
    await until("the refusal", () => replies().length > 0);
    expect(JSON.parse(replies()[0]!.text)).toMatchObject({ ok: false, error: { code: "unauthorized" } });
    const alarms = () => b.events("alarm.unauthorized_command").filter((e) => e.data.reason === "retained");
    // Two reconnects (each subscribe delivers the retained command again) and a restart.
    for (let i = 0; i < 2; i++) {
      const mark = srv.received.length;
      dropConnection(b);
      await srv.waitFor(isOnline(srv, mark), 5000, "online again");
      expect((await srv.command("snapshot", {})).ok).toBe(true); // after the retained one, in order
    }
    expect(alarms()).toHaveLength(1);
    await b.rt.stop();
    b = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }), dir);
    await online(b);
    expect((await srv.command("snapshot", {})).ok).toBe(true);
    expect(alarms()).toHaveLength(1);
    expect(replies()).toHaveLength(1);
    expect(b.events("admin.open")).toEqual([]);
  });

  it("two banks with one identity: seen from closes right after connect (3.1.1 has no DISCONNECT)", async () => {
    const device = nextDevice();
    const a = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }));
    await online(a);
    const b = await linkedBank(device, syncConfig(mosquitto.url, { protocol: 4 }));
    await until("both to see the duplicate identity", () => !!a.rt.link!.info().duplicateIdentity && !!b.rt.link!.info().duplicateIdentity, 20_000);
    expect(a.rt.link!.info().lastError).toMatch(/another bank uses/);
    expect([a, b].flatMap((x) => x.events("alarm.duplicate_identity"))).toHaveLength(2);
  });
});

describe("several endpoints", () => {
  it("a dead endpoint is passed over; losing the node the bank is on under a backlog moves it to the next, sending again from the watermark", async () => {
    const other = new Mosquitto({ persistence: true });
    const first = new Mosquitto({ persistence: true });
    await Promise.all([other.start(), first.start()]);
    cleanup.push(() => other.close());
    cleanup.push(() => first.close());
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const device = nextDevice();
    const onOther = await server(other, device);
    const b = await linkedBank(device, syncConfig([dead, first.url, other.url]));
    await online(b);
    expect(b.rt.link!.info()).toMatchObject({ broker: first.url, endpoints: [dead, first.url, other.url], lastError: null });
    const start = b.rt.ledger.headSeq;
    b.rt.ledger.transact((tx) => {
      for (let i = 0; i < 20_000; i++) tx.event({ type: "door.opened", compartment: "A01", actor: "test", data: { i } });
    });
    await until("some of the backlog acknowledged", () => b.rt.link!.outbox.ackedSeq >= start + 300);
    await first.kill();
    await until("the link to see it", () => b.rt.link!.info().state !== "online");
    const watermark = b.rt.link!.outbox.ackedSeq;
    const head = b.rt.ledger.headSeq;
    expect(watermark).toBeLessThan(head);
    await online(b);
    expect(b.rt.link!.info()).toMatchObject({ broker: other.url, lastError: null });
    await b.rt.link!.outbox.drained();
    // The other node got everything from the watermark on: nothing the first did not acknowledge is lost.
    await onOther.waitForEvents(head, 15_000, watermark + 1);
  });

  it("lockerctl sync and status name the endpoint and the version", async () => {
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const d = await daemon(nextDevice(), syncConfig([dead, mosquitto.url], { protocol: 4 }));
    await waitForOutput(d, /connected to the broker/, 10_000);
    await until("online", async () => ((await admin(d, "sync")) as SyncStatus).connected);
    expect(d.output()).toMatch(new RegExp(`"broker":"${mosquitto.url}","protocol":"3.1.1","endpoint":"2/2"`));
    expect(d.output()).toMatch(new RegExp(`no connection: ${dead} \\(MQTT 3.1.1\\): connect ECONNREFUSED`));
    const view = (await admin(d, "sync")) as SyncStatus;
    expect(view).toMatchObject({ connected: true, url: mosquitto.url, endpoints: [dead, mosquitto.url], protocol: "3.1.1", lastError: null });
    expect(lockerctl(d, "sync")).toContain(`server link connected ${mosquitto.url} (MQTT 3.1.1, endpoint 2 of 2)`);
    expect(lockerctl(d, "status")).toMatch(new RegExp(`connected ${mosquitto.url} .*\n  \\(MQTT 3\\.1\\.1, endpoint 2 of 2\\)\n`));
  });
});

describe("closes without an MQTT error, after CONNACK", () => {
  it("closed before SUBACK (a broker that cannot set the subscription up): said so, and never taken for a second bank", async () => {
    const gate = new Gate(mosquitto.port, { close: (p) => p.type === PACKET.SUBSCRIBE });
    await gate.start();
    cleanup.push(() => gate.close());
    const device = nextDevice();
    const b = await linkedBank(device, syncConfig(gate.url, { protocol: 4 }));
    await until("four closes", () => gate.closed.length >= 4);
    const info = b.rt.link!.info();
    expect(info.lastError).toBe(
      `${gate.url} (MQTT 3.1.1): the broker closed the connection after CONNACK, before SUBACK of lockers/hq/${device}/cmd/+: it would not or could not set up the command subscription (a subscribe ACL? its log says why)`,
    );
    expect(info.duplicateIdentity).toBeNull();
    expect(b.events("alarm.duplicate_identity")).toEqual([]);
  });
});
