// The server link's benchmarks (npm run bench, modes drain | command | fleet), each against brokers
// started here, each beside a bare mqtt.js figure measured in the same run on the same broker.
// drain and command run on every engine BENCH_BROKERS names (default: each one installed of
// mosquitto, mosquitto-3.1.1, nats, rabbitmq; scripts/brokers.ts), one after the other.
//
//   drain    100,000 queued events to the broker vs a bare QoS 1 publish loop with the same window
//   command  server publishes cmd, receives reply: p50/p99 vs a QoS 1 echo client (bare, durable)
//   fleet    1,000 banks in this process, one server, reserve → deposit → sealed code → pickup
import { randomUUID } from "node:crypto";
import { generateKeyPairSync } from "node:crypto";
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { parseConfig } from "../src/config/load.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { ensureDataDir, loadDeviceKey } from "../src/ledger/datadir.js";
import { Ledger } from "../src/ledger/ledger.js";
import { silentLogger } from "../src/log.js";
import { Runtime } from "../src/runtime.js";
import type { ReplyEnvelope } from "../src/sync/commands.js";
import { JSON_PROPERTIES } from "../src/sync/link.js";
import { openSealed, publicKeyB64, type SealedBox } from "../src/sync/seal.js";
import { Mosquitto, type Engine } from "./broker.js";
import { ENGINES, hasNats, hasRabbit, makeEngine, type EngineName } from "./brokers.js";
import { median, pct, round, tmp, type Emit } from "./bench-common.js";

/** BENCH_SYNC=NORMAL: the command path without its fsync, the CPU and network part alone. */
const SYNC = process.env.BENCH_SYNC === "NORMAL" ? "NORMAL" : "FULL";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A step that never completes counts as a failure, not a hang. */
function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}


async function bankRuntime(
  example: Record<string, unknown>,
  dataDir: string,
  url: string | string[],
  opts: { device?: string; window?: number; synchronous: "FULL" | "NORMAL" | "OFF"; sealKey?: string; protocol?: 4 | 5 },
): Promise<Runtime> {
  const raw = structuredClone(example) as Record<string, Record<string, unknown>>;
  raw.log = { level: "error" };
  raw.device = { ...raw.device, id: opts.device ?? "bank-01" };
  raw.hardware = { profile: "sim", springOpen: true, openDelayMs: 0, timeScale: 0 };
  raw.sync = { enabled: true, url, window: opts.window ?? 256, telemetryS: 300, ...(opts.protocol ? { protocol: opts.protocol } : {}), ...(opts.sealKey ? { sealKey: opts.sealKey } : {}) };
  const rt = new Runtime({ config: parseConfig(raw), dataDir, log: silentLogger(), version: "bench", simSocket: false, adminSocket: false, synchronous: opts.synchronous });
  await rt.start();
  return rt;
}

function online(rt: Runtime): Promise<number> {
  return new Promise((resolve) => {
    if (rt.link?.info().state === "online") return resolve(performance.now());
    rt.link!.once("online", () => resolve(performance.now()));
  });
}

/**
 * The engines BENCH_BROKERS names (comma-separated; default every one installed): mosquitto in
 * MQTT 5 and 3.1.1, a three-node NATS and RabbitMQ cluster (scripts/brokers.ts).
 */
function engines(): EngineName[] {
  const asked = process.env.BENCH_BROKERS?.split(",").map((e) => e.trim()).filter(Boolean);
  for (const e of asked ?? []) if (!(ENGINES as readonly string[]).includes(e)) throw new Error(`BENCH_BROKERS: unknown engine ${e}; one of ${ENGINES.join(", ")}`);
  const installed = (e: EngineName) => (e === "nats" ? hasNats() : e === "rabbitmq" ? hasRabbit() : true);
  const list = (asked as EngineName[] | undefined) ?? ENGINES.filter((e) => installed(e) || (process.stderr.write(`bench: ${e} not installed, left out (scripts/test-deps.sh)\n`), false));
  return list;
}

/** Metric names: mosquitto's as they always were, another engine's with its name. */
const named = (metric: string, engine: EngineName) => (engine === "mosquitto" ? metric : `${metric}_${engine.replace(/[^a-z0-9]/g, "")}`);

/** Each engine in turn, started for the figure and closed after it. */
async function onEach(run: (engine: Engine, name: EngineName) => Promise<void>): Promise<void> {
  for (const name of engines()) {
    const engine = makeEngine(name);
    const t0 = performance.now();
    await engine.start();
    process.stderr.write(`bench: ${name} (${engine.nodes} node${engine.nodes > 1 ? "s" : ""}) up in ${round((performance.now() - t0) / 1000, 1)} s\n`);
    try {
      await run(engine, name);
    } finally {
      await engine.close();
    }
  }
}

/**
 * A bare mqtt.js client publishing `n` QoS 1 messages with at most `window` unacknowledged: the same
 * packets as the bank's (MQTT 5: its Content Type and Payload Format Indicator too).
 */
async function bareDrain(broker: Engine, n: number, window: number, payload: string): Promise<{ rate: number; cpuUs: number }> {
  const c = await broker.client({ clean: true });
  const opts = { qos: 1 as const, ...(broker.protocol === 5 ? { properties: { ...JSON_PROPERTIES } } : {}) };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let acked = 0;
    const pump = () => {
      while (sent < n && sent - acked < window) {
        sent++;
        c.publish("bench/bare/events", payload, opts, () => {
          if (++acked === n) resolve();
          else setImmediate(pump);
        });
      }
    };
    pump();
  });
  const rate = n / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  await c.endAsync();
  return { rate, cpuUs: (cpu.user + cpu.system) / n };
}

/**
 * Backlog drain on every engine (BENCH_BROKERS): N queued events from the ledger to the broker
 * (node 0; the bank's sync.url lists every node) beside a bare mqtt.js QoS 1 loop on the same node,
 * same payload, window, version and (MQTT 5) properties. Rounds of floor then ours, each ours from
 * a fresh copy of the backlog; the medians: on a shared machine one round says little.
 */
export async function drain(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const WINDOW = 256;
  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
  await onEach(async (broker, name) => {
    // A cluster engine moves a few thousand QoS 1 messages a second: a smaller backlog says as much.
    const N = Number(process.env.BENCH_DRAIN ?? (broker.nodes > 1 ? 20_000 : 100_000));
    const dir = tmp();
    try {
      const seed = join(dir, "seed");
      ensureDataDir(seed);
      loadDeviceKey(seed); // a bank's ledger comes with its key (a ledger alone is refused at start)
      const ledger = new Ledger(join(seed, "ledger.db"), { now: () => Date.now(), synchronous: "NORMAL" });
      for (let done = 0; done < N; done += 10_000) {
        ledger.transact((tx) => {
          for (let i = done; i < Math.min(N, done + 10_000); i++) tx.event({ type: "door.opened", compartment: "A01", parcel: `P-${i}`, actor: "courier-1", data: { i, terminal: "T1" } });
        });
      }
      const payload = JSON.stringify(ledger.eventsFrom(1, 1)[0]);
      ledger.close();
      const bares: number[] = [];
      const ourRates: number[] = [];
      const ratios: number[] = [];
      // CPU of this process per event, ours and the bare loop's: on a machine the broker shares,
      // what the client burns the broker lacks.
      const cpu = { ours: [] as number[], bare: [] as number[] };
      for (let r = 0; r < ROUNDS; r++) {
        const dataDir = join(dir, `round-${r}`);
        cpSync(seed, dataDir, { recursive: true });
        const { rate: bare, cpuUs } = await bareDrain(broker, N, WINDOW, payload);
        const rt = await bankRuntime(example, dataDir, broker.urls, { window: WINDOW, synchronous: "FULL", protocol: broker.protocol });
        const t0 = await online(rt);
        const cpu0 = process.cpuUsage();
        await rt.link!.outbox.drained();
        const ours = rt.ledger.headSeq / ((performance.now() - t0) / 1000);
        const used = process.cpuUsage(cpu0);
        await rt.stop();
        cpu.ours.push((used.user + used.system) / N);
        cpu.bare.push(cpuUs);
        bares.push(bare);
        ourRates.push(ours);
        ratios.push(ours / bare);
      }
      const where = `${name}${broker.nodes > 1 ? ` (${broker.nodes} nodes)` : ""}, MQTT ${broker.protocol === 5 ? "5" : "3.1.1"}`;
      const rounds = `median of ${ROUNDS} rounds (ratios ${ratios.map((x) => round(x, 2)).join(", ")}; CPU per event ${round(median(cpu.ours), 1)} µs, bare ${round(median(cpu.bare), 1)} µs)`;
      emit({ metric: named("backlog_drain", name), value: Math.round(median(ourRates)), unit: "events/s", floor: Math.round(median(bares)), target: null, note: `${where}: ${N} queued events, window ${WINDOW}, ${payload.length}-byte events, ${rounds}; floor: bare mqtt.js QoS 1 loop, same broker node, payload, window, version and properties` });
      emit({ metric: named("backlog_drain_ratio", name), value: round(median(ratios), 2), unit: "ratio", floor: null, target: 0.7, note: `${where}: ours / bare mqtt.js (higher is better), ${rounds}` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** Round trips of `send` → first message on `replyTopic`, one at a time. */
async function roundTrips(server: MqttClient, n: number, send: (i: number) => Promise<void>, replyTopic: string): Promise<number[]> {
  const samples: number[] = [];
  let waiting: (() => void) | undefined;
  const onMessage = (topic: string) => {
    if (topic === replyTopic) waiting?.();
  };
  server.on("message", onMessage);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((r) => (waiting = r));
    await send(i);
    await got;
    samples.push(performance.now() - t0);
  }
  server.off("message", onMessage);
  return samples.sort((a, b) => a - b);
}

/**
 * Command round trip on every engine (BENCH_BROKERS): the server on the last node, the bank (and
 * the floors' echo clients) on node 0, so on a cluster every round trip crosses it both ways.
 */
export async function command(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const N = Number(process.env.BENCH_COMMANDS ?? 2000);
  await onEach(async (broker, name) => {
    const dir = tmp();
    const far = broker.nodes - 1;
    try {
      // The echo clients hold a persistent session, as the bank does: on RabbitMQ that makes their
      // subscription a quorum queue, on NATS a replicated JetStream consumer, like the bank's.
      const persistent = (id: string) => ({ clean: false, clientId: `bench-${id}-${process.pid}`, ...(broker.protocol === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}) });
      // Floor: a bare QoS 1 echo — receive on one topic, publish on another.
      const echo = await broker.client(persistent("echo"));
      await echo.subscribeAsync("bench/cmd", { qos: 1 });
      echo.on("message", (_t, payload) => echo.publish("bench/reply", payload, { qos: 1 }));
      const srv = await broker.client({ clean: true }, undefined, far);
      await srv.subscribeAsync("bench/reply", { qos: 1 });
      const bare = await roundTrips(srv, N, (i) => srv.publishAsync("bench/cmd", JSON.stringify({ id: `e${i}` }), { qos: 1 }).then(() => undefined), "bench/reply");
      await echo.endAsync();
      // Second floor: the same echo with one durable SQLite commit (WAL, FULL) before each reply:
      // the least any bank that records a command before answering could do.
      const db = new Database(join(dir, "floor.db"));
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${SYNC}`);
      db.exec("CREATE TABLE t (id TEXT)");
      const ins = db.prepare("INSERT INTO t VALUES (?)");
      const durableEcho = await broker.client(persistent("durable-echo"));
      await durableEcho.subscribeAsync("bench/cmd2", { qos: 1 });
      durableEcho.on("message", (_t, payload) => {
        ins.run(payload.toString());
        durableEcho.publish("bench/reply2", payload, { qos: 1 });
      });
      await srv.subscribeAsync("bench/reply2", { qos: 1 });
      const durable = await roundTrips(srv, N, (i) => srv.publishAsync("bench/cmd2", JSON.stringify({ id: `d${i}` }), { qos: 1 }).then(() => undefined), "bench/reply2");
      await durableEcho.endAsync();
      const commits: number[] = [];
      for (let i = 0; i < N; i++) {
        const t0 = performance.now();
        ins.run(`c${i}`);
        commits.push(performance.now() - t0);
      }
      commits.sort((a, b) => a - b);
      db.close();

      const rt = await bankRuntime(example, join(dir, "data"), broker.urls, { synchronous: SYNC, protocol: broker.protocol });
      await online(rt);
      // Inside the bank: from the command's bytes to its reply (decode, checks, the change and its
      // durable commit), to tell our part of the round trip from the broker's and the OS's.
      const inBank: number[] = [];
      const router = rt.router!;
      const handle = router.handle.bind(router);
      router.handle = async (name, payload) => {
        const t0 = performance.now();
        const r = await handle(name, payload);
        inBank.push(performance.now() - t0);
        return r;
      };
      const root = rt.link!.topics.root;
      await srv.subscribeAsync(`${root}/reply/set-compartment`, { qos: 1 });
      // A real change each time: disable / enable a compartment (state + event + command id, one durable commit).
      const ours = await roundTrips(
        srv,
        N,
        (i) =>
          srv
            .publishAsync(`${root}/cmd/set-compartment`, JSON.stringify({ id: `b-${i}`, args: { compartment: "A05", enabled: i % 2 === 1, reason: "bench run" }, issuedAt: Date.now() }), { qos: 1 })
            .then(() => undefined),
        `${root}/reply/set-compartment`,
      );
      await srv.endAsync();
      await rt.stop();
      const where = `${name}${broker.nodes > 1 ? ` (${broker.nodes} nodes: server on node ${far + 1}, bank on node 1)` : ""}, MQTT ${broker.protocol === 5 ? "5" : "3.1.1"}`;
      const note =
        `${where}: ${N} sequential set-compartment commands (one ${SYNC === "FULL" ? "durable " : ""}commit each), Nagle off both sides; ` +
        `floor: a QoS 1 echo client (persistent session, as the bank's) committing each message to SQLite (${SYNC}) before replying, same nodes; a bare echo: p50 ${round(pct(bare, 50))} / p99 ${round(pct(bare, 99))} ms`;
      emit({ metric: named("command_rtt_p50", name), value: round(pct(ours, 50)), unit: "ms", floor: round(pct(durable, 50)), target: null, note });
      emit({ metric: named("command_rtt_p99", name), value: round(pct(ours, 99)), unit: "ms", floor: round(pct(durable, 99)), target: name === "mosquitto" ? 3 : null, note });
      // Floor over ours: 1 is as fast as the durable echo (higher is better), as backlog_drain_ratio.
      emit({ metric: named("command_rtt_ratio", name), value: round(pct(durable, 50) / pct(ours, 50), 2), unit: "ratio", floor: null, target: 0.7, note: `${where}: durable echo p50 / ours p50 (higher is better)` });
      inBank.sort((a, b) => a - b);
      emit({
        metric: named("command_in_bank_p99", name),
        value: round(pct(inBank, 99)),
        unit: "ms",
        floor: round(pct(commits, 99)),
        target: null,
        note: `${where}: inside the bank, message in to reply out (p50 ${round(pct(inBank, 50))} ms); floor: one ${SYNC === "FULL" ? "durable " : ""}SQLite commit`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

export async function fleet(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const BANKS = Number(process.env.BENCH_FLEET ?? 1000);
  const SECONDS = Number(process.env.BENCH_FLEET_S ?? 20);
  // Reservations per second across the fleet: 20/s is 1.7 million parcels a day, ~1,700 per bank.
  const RATE = Number(process.env.BENCH_FLEET_RATE ?? 20);
  const broker = new Mosquitto({ sysInterval: 1 });
  await broker.start();
  const dir = tmp();
  const seal = generateKeyPairSync("x25519");
  const banks: { rt: Runtime; hw: SimHardware; busy: boolean }[] = [];
  try {
    const t0 = performance.now();
    for (let i = 0; i < BANKS; i++) {
      const device = `bank-${String(i).padStart(4, "0")}`;
      // 1,000 Pis in one process: each bank's disk syncs (commits, idle checkpoints) would queue on
      // this one thread, which no real bank shares. The single-bank figures include the durable path.
      const rt = await bankRuntime(example, join(dir, device), broker.url, { device, window: 64, synchronous: "OFF", sealKey: publicKeyB64(seal.publicKey) });
      banks.push({ rt, hw: rt.hardware as SimHardware, busy: false });
    }
    process.stderr.write(`fleet: ${BANKS} banks started in ${round((performance.now() - t0) / 1000, 1)} s\n`);
    await within(Promise.all(banks.map((b) => online(b.rt))), "fleet online", 60_000);
    const startS = (performance.now() - t0) / 1000;

    const srv = await broker.client({ clean: true });
    const pending = new Map<string, { t0: number; done: (r: ReplyEnvelope) => void }>();
    const deposits = new Map<string, (e: { data: { sealedCode: SealedBox } }) => void>();
    const sys: Record<string, number> = {};
    srv.on("message", (topic, payload) => {
      if (topic.startsWith("$SYS/")) {
        sys[topic] = Number(payload.toString());
        return;
      }
      const msg = JSON.parse(payload.toString()) as { id?: string; type?: string; parcel?: string; data?: { sealedCode: SealedBox } };
      if (topic.endsWith("/reply/reserve") && msg.id) pending.get(msg.id)?.done(msg as ReplyEnvelope);
      else if (msg.type === "parcel.deposited" && msg.parcel) deposits.get(msg.parcel)?.(msg as { data: { sealedCode: SealedBox } });
    });
    await srv.subscribeAsync(["lockers/+/+/reply/reserve", "lockers/+/+/events", "$SYS/broker/messages/received", "$SYS/broker/messages/sent"], { qos: 1 });
    await sleep(1500);
    const sysAt = () => (sys["$SYS/broker/messages/received"] ?? 0) + (sys["$SYS/broker/messages/sent"] ?? 0);
    const msgs0 = sysAt();

    const rtt: number[] = [];
    let pickups = 0;
    let failures = 0;
    const cycle = async (b: (typeof banks)[number]) => {
      b.busy = true;
      const parcel = `F-${randomUUID().slice(0, 12)}`;
      const id = randomUUID();
      const root = b.rt.link!.topics.root;
      try {
        const reply = await within(
          new Promise<ReplyEnvelope>((resolve) => {
            pending.set(id, { t0: performance.now(), done: resolve });
            srv.publish(`${root}/cmd/reserve`, JSON.stringify({ id, args: { parcel, recipient: "p-1001", size: "S" }, issuedAt: Date.now() }), { qos: 1 });
          }),
          "reserve reply",
        );
        rtt.push(performance.now() - pending.get(id)!.t0);
        pending.delete(id);
        if (!reply.ok) throw new Error(reply.error.message);
        const compartment = (reply.result as { compartment: string }).compartment;
        const lock = b.rt.bank.layoutOf(compartment).lock;
        const deposited = new Promise<{ data: { sealedCode: SealedBox } }>((r) => deposits.set(parcel, r));
        b.hw.keypad.keys("*2468#");
        b.hw.keypad.scan(parcel);
        await sleep(5);
        b.hw.doors.set(lock, "closed");
        const code = openSealed((await within(deposited, "deposit event")).data.sealedCode, seal.privateKey, parcel);
        deposits.delete(parcel);
        b.hw.keypad.keys("*");
        b.hw.keypad.keys(`${code}#`);
        await sleep(5);
        b.hw.doors.set(lock, "closed");
        pickups++;
      } catch (e) {
        if (failures++ < 5) process.stderr.write(`fleet: ${b.rt.link!.topics.root}: ${(e as Error).message}\n`);
      } finally {
        b.busy = false;
      }
    };
    const tRun = performance.now();
    const running: Promise<void>[] = [];
    let next = 0;
    while (performance.now() - tRun < SECONDS * 1000) {
      const due = Math.floor(((performance.now() - tRun) / 1000) * RATE);
      while (next < due) {
        const b = banks[Math.floor(Math.random() * banks.length)]!;
        next++;
        if (!b.busy) running.push(cycle(b));
      }
      await sleep(2);
    }
    await Promise.all(running);
    const runS = (performance.now() - tRun) / 1000;
    await sleep(1500);
    const brokerRate = (sysAt() - msgs0) / (runS + 1.5);
    rtt.sort((a, b) => a - b);
    const note = `${BANKS} banks in one process (SQLite synchronous=OFF: one thread stands in for 1,000 Pis' disks), ${RATE} reservations/s for ${SECONDS} s, each followed by a deposit and a pickup with the sealed code: ${pickups} done, ${failures} failed; fleet start ${round(startS, 1)} s`;
    emit({ metric: "fleet_command_p50", value: round(pct(rtt, 50)), unit: "ms", floor: null, target: null, note });
    emit({ metric: "fleet_command_p99", value: round(pct(rtt, 99)), unit: "ms", floor: null, target: 20, note });
    emit({ metric: "fleet_broker_messages", value: Math.round(brokerRate), unit: "messages/s", floor: null, target: null, note: "mosquitto $SYS messages received + sent during the run" });
    await srv.endAsync();
  } finally {
    for (const b of banks) await b.rt.stop();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
