// What a server can rely on in the order and the form of what a bank publishes, against mosquitto:
// "online" before the backlog of a reconnect, every event committed before the link stops before
// its "offline", and MQTT 5 content type / payload format indicator on every message (the Last Will
// too). docs/asyncapi.yaml promises each of these.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { LedgerEvent } from "../../src/domain/events.js";
import { testBank, type TestBank } from "../helpers/bank.js";
import { removeDir, startDaemon, stopDaemon, tempDir } from "../helpers/daemon.js";
import { Mosquitto } from "../helpers/mosquitto.js";
import { TestServer, type Received } from "../helpers/server.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const broker = new Mosquitto({ persistence: true });
beforeAll(() => broker.start());
afterAll(() => broker.close());

const open: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of open.splice(0).reverse()) await close();
});

const syncConfig = () => ({ enabled: true, url: broker.url, reconnectBaseMs: 100, reconnectCapMs: 400, stateCoalesceMs: 50, window: 16 });

async function linkedBank(): Promise<TestBank> {
  const b = await testBank((cfg) => (cfg.sync = syncConfig()));
  open.push(() => b.close());
  return b;
}

async function server(opts: Parameters<TestServer["connect"]>[0] = {}, device = "bank-01"): Promise<TestServer> {
  const s = await new TestServer(broker, "hq", device).connect(opts);
  open.push(() => s.close());
  return s;
}

async function online(b: TestBank): Promise<void> {
  for (let i = 0; i < 300 && b.rt.link?.info().state !== "online"; i++) await sleep(10);
  expect(b.rt.link?.info().state).toBe("online");
}

/** Published by the bank now (a retained copy handed out at subscribe time is not). */
const live = (srv: TestServer, topic: string) => (m: Received) => m.topic === topic && !m.packet.retain;
const seqOf = (m: Received) => (JSON.parse(m.text) as LedgerEvent).seq;

describe("order and form of what the bank publishes", () => {
  it("says online before it sends the backlog of a reconnect", async () => {
    const session = { clientId: "server-order", clean: false, properties: { sessionExpiryInterval: 600 } };
    const srv = await server(session);
    const b = await linkedBank();
    await online(b);
    await srv.waitForEvents(b.rt.ledger.headSeq);
    const before = b.rt.ledger.headSeq;
    await broker.stop();
    open.push(() => broker.start()); // for the next test, should this one fail while it is down
    for (let i = 0; i < 300 && b.rt.link?.info().state === "online"; i++) await sleep(10);
    // A backlog of several windows while the broker is away.
    b.rt.ledger.transact((tx) => {
      for (let i = 0; i < 100; i++) tx.event({ type: "door.opened", compartment: "A01", data: { i } });
    });
    await broker.start();
    open.pop();
    await srv.client.endAsync(true);
    const resumed = await server(session);
    await online(b);
    await resumed.waitForEvents(b.rt.ledger.headSeq, 10_000, before + 1);
    // (Before it, the broker may have queued the bank's Last Will when it went down.)
    const status = resumed.received.findIndex((m) => live(resumed, resumed.t.status)(m) && m.text.includes('"online"'));
    const firstEvent = resumed.received.findIndex((m) => m.topic === resumed.t.events && seqOf(m) > before);
    expect(status, "online after the reconnect").toBeGreaterThanOrEqual(0);
    expect(status, "online comes before the first event of the backlog").toBeLessThan(firstEvent);
  });

  it("a clean stop in two halves: quiesced, it executes no command; stopped, every event committed before goes out before offline", async () => {
    const srv = await server();
    const b = await linkedBank();
    await online(b);
    await srv.waitForEvents(b.rt.ledger.headSeq);
    const from = srv.received.length;
    b.rt.link!.quiesce();
    const ignored = { id: "while-stopping", args: { compartment: "A05", enabled: false, reason: "too late" }, issuedAt: Date.now() };
    await srv.client.publishAsync(srv.t.cmd["set-compartment"], JSON.stringify(ignored), { qos: 1 });
    await sleep(200); // delivered, and ignored
    // More than the window (16) in flight: the backlog must drain, not just what is in flight. The
    // last one stands for the runtime's system.stopped.
    b.rt.ledger.transact((tx) => {
      for (let i = 0; i < 100; i++) tx.event({ type: "door.opened", compartment: "A01", data: { i } });
      tx.event({ type: "system.stopped", data: { reason: "test" } });
    });
    const head = b.rt.ledger.headSeq;
    await b.rt.link!.stop();
    const offline = await srv.waitFor((m) => live(srv, srv.t.status)(m) && srv.received.indexOf(m) >= from, 5000, "offline");
    const sent = srv.received.slice(from, srv.received.indexOf(offline)).filter((m) => m.topic === srv.t.events).map(seqOf);
    expect(Math.max(0, ...sent), "the last event committed came before offline").toBe(head);
    expect(b.rt.ledger.ackedSeq()).toBe(head);
    // A clean stop's offline, unlike the Last Will, carries the bank's clock.
    expect(JSON.parse(offline.text)).toMatchObject({ state: "offline", clock: expect.objectContaining({ now: expect.any(Number) }) });
    expect(srv.received.filter((m) => m.topic.startsWith(`${srv.t.root}/reply/`))).toEqual([]);
    expect(b.rt.ledger.compartment("A05")?.enabled).toBe(true);
  });

  it("marks everything it publishes as JSON: content type application/json, payload format indicator 1", async () => {
    const srv = await server();
    const b = await linkedBank();
    await online(b);
    await srv.command("snapshot", {});
    b.rt.link!.publishTelemetry();
    await srv.waitFor(live(srv, srv.t.telemetry), 5000, "telemetry");
    await srv.waitFor(live(srv, srv.t.state), 5000, "state");
    await srv.waitForEvents(b.rt.ledger.headSeq);
    const kinds = new Set<string>();
    for (const m of srv.received.filter((r) => !r.packet.retain)) {
      const kind = m.topic.slice(srv.t.root.length + 1).split("/")[0]!;
      if (kind === "cmd") continue; // the server's own
      kinds.add(kind);
      expect(m.packet.properties, m.topic).toMatchObject({ contentType: "application/json", payloadFormatIndicator: true });
    }
    expect([...kinds].sort()).toEqual(["events", "reply", "state", "status", "telemetry"]);
  });

  // The link's half holds (the test above); the daemon's needs Runtime.doStop (src/runtime.ts) to
  // quiesce the link where it now stops it, and stop it after writing system.stopped (before the
  // ledger closes). Once it does: it() here, and "A clean stop" in docs/asyncapi.yaml.
  it("a clean stop (SIGTERM): system.stopped reaches the server before offline", async () => {
    const device = "bank-32";
    const srv = await server({}, device);
    const dir = tempDir();
    const d = await startDaemon({ dir, patch: (cfg) => ((cfg.device = { ...cfg.device, id: device }), (cfg.sync = syncConfig())) });
    open.push(() => removeDir(dir));
    await srv.waitFor((m) => live(srv, srv.t.status)(m) && m.text.includes('"online"'), 10_000, "online");
    const from = srv.received.length;
    expect(await stopDaemon(d)).toBe(0);
    const offline = await srv.waitFor((m) => live(srv, srv.t.status)(m) && srv.received.indexOf(m) >= from, 5000, "offline");
    const before = srv.received.slice(from, srv.received.indexOf(offline));
    expect(before.filter((m) => m.topic === srv.t.events).map((m) => (JSON.parse(m.text) as LedgerEvent).type)).toContain("system.stopped");
  });

  it("marks the Last Will as JSON too; it is the one status without clock", async () => {
    const device = "bank-31";
    const srv = await server({}, device);
    const dir = tempDir();
    const d = await startDaemon({ dir, patch: (cfg) => ((cfg.device = { ...cfg.device, id: device }), (cfg.sync = syncConfig())) });
    open.push(async () => (await stopDaemon(d), removeDir(dir)));
    const up = await srv.waitFor((m) => live(srv, srv.t.status)(m) && m.text.includes('"online"'), 10_000, "online");
    const from = srv.received.length;
    await stopDaemon(d, "SIGKILL");
    const will = await srv.waitFor((m) => m.topic === srv.t.status && srv.received.indexOf(m) >= from, 10_000, "Last Will");
    expect(will.packet.properties).toMatchObject({ contentType: "application/json", payloadFormatIndicator: true });
    const { instance, version, bootedAt, clock } = JSON.parse(up.text) as Record<string, unknown>;
    expect(clock).toEqual(expect.objectContaining({ skewToleranceMs: 120_000, maxCommandLifetimeMs: 600_000 }));
    expect(JSON.parse(will.text)).toEqual({ state: "offline", version, bootedAt, instance });
  });
});
