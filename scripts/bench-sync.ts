// The server link's benchmarks (npm run bench, modes drain | command | fleet), each against a
// mosquitto started here, each beside a bare mqtt.js figure measured in the same run.
//
//   drain    100,000 queued events to the broker vs a bare QoS 1 publish loop with the same window
//   command  server publishes cmd, receives reply: p50/p99 vs a bare QoS 1 echo client
//   fleet    1,000 banks in this process, one server, reserve → deposit → sealed code → pickup
import { randomUUID } from "node:crypto";
import { generateKeyPairSync } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { MqttClient } from "mqtt";
import { parseConfig } from "../src/config/load.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { ensureDataDir } from "../src/ledger/datadir.js";
import { Ledger } from "../src/ledger/ledger.js";
import { silentLogger } from "../src/log.js";
import { Runtime } from "../src/runtime.js";
import type { ReplyEnvelope } from "../src/sync/commands.js";
import { openSealed, publicKeyB64, type SealedBox } from "../src/sync/seal.js";
import { Mosquitto } from "./broker.js";
import { pct, round, tmp, type Emit } from "./bench-common.js";

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
  url: string,
  opts: { device?: string; window?: number; synchronous: "FULL" | "NORMAL" | "OFF"; sealKey?: string },
): Promise<Runtime> {
  const raw = structuredClone(example) as Record<string, Record<string, unknown>>;
  raw.log = { level: "error" };
  raw.device = { ...raw.device, id: opts.device ?? "bank-01" };
  raw.hardware = { profile: "sim", springOpen: true, openDelayMs: 0, timeScale: 0 };
  raw.sync = { enabled: true, url, window: opts.window ?? 256, telemetryS: 300, ...(opts.sealKey ? { sealKey: opts.sealKey } : {}) };
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

/** A bare mqtt.js client publishing `n` QoS 1 messages with at most `window` unacknowledged. */
async function bareDrain(broker: Mosquitto, n: number, window: number, payload: string): Promise<number> {
  const c = await broker.client({ clean: true });
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let sent = 0;
    let acked = 0;
    const pump = () => {
      while (sent < n && sent - acked < window) {
        sent++;
        c.publish("bench/bare/events", payload, { qos: 1 }, () => {
          if (++acked === n) resolve();
          else setImmediate(pump);
        });
      }
    };
    pump();
  });
  const rate = n / ((performance.now() - t0) / 1000);
  await c.endAsync();
  return rate;
}

export async function drain(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const N = Number(process.env.BENCH_DRAIN ?? 100_000);
  const WINDOW = 256;
  const broker = new Mosquitto();
  await broker.start();
  const dir = tmp();
  try {
    const dataDir = join(dir, "data");
    ensureDataDir(dataDir);
    const ledger = new Ledger(join(dataDir, "ledger.db"), { now: () => Date.now(), synchronous: "NORMAL" });
    for (let done = 0; done < N; done += 10_000) {
      ledger.transact((tx) => {
        for (let i = done; i < Math.min(N, done + 10_000); i++) tx.event({ type: "door.opened", compartment: "A01", parcel: `P-${i}`, actor: "courier-1", data: { i, terminal: "T1" } });
      });
    }
    const payload = JSON.stringify(ledger.eventsFrom(1, 1)[0]);
    ledger.close();
    const bare = await bareDrain(broker, N, WINDOW, payload);
    const rt = await bankRuntime(example, dataDir, broker.url, { window: WINDOW, synchronous: "FULL" });
    const t0 = await online(rt);
    await rt.link!.outbox.drained();
    const ours = rt.ledger.headSeq / ((performance.now() - t0) / 1000);
    await rt.stop();
    emit({ metric: "backlog_drain", value: Math.round(ours), unit: "events/s", floor: Math.round(bare), target: null, note: `${N} queued events, window ${WINDOW}, ${payload.length}-byte events; floor: bare mqtt.js QoS 1 loop, same broker, payload and window` });
    emit({ metric: "backlog_drain_ratio", value: round(ours / bare, 2), unit: "ratio", floor: null, target: 0.7, note: "ours / bare mqtt.js (higher is better)" });
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Round trips of `send` → first message on `replyTopic`, one at a time. */
async function roundTrips(server: MqttClient, n: number, send: (i: number) => Promise<void>, replyTopic: string): Promise<number[]> {
  const samples: number[] = [];
  let waiting: (() => void) | undefined;
  server.on("message", (topic) => {
    if (topic === replyTopic) waiting?.();
  });
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((r) => (waiting = r));
    await send(i);
    await got;
    samples.push(performance.now() - t0);
  }
  return samples.sort((a, b) => a - b);
}

export async function command(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const N = 2000;
  const broker = new Mosquitto();
  await broker.start();
  const dir = tmp();
  try {
    // Floor: a bare QoS 1 echo — receive on one topic, publish on another.
    const echo = await broker.client({ clean: true });
    await echo.subscribeAsync("bench/cmd", { qos: 1 });
    echo.on("message", (_t, payload) => echo.publish("bench/reply", payload, { qos: 1 }));
    const srv = await broker.client({ clean: true });
    await srv.subscribeAsync("bench/reply", { qos: 1 });
    const bare = await roundTrips(srv, N, (i) => srv.publishAsync("bench/cmd", JSON.stringify({ id: `e${i}` }), { qos: 1 }).then(() => undefined), "bench/reply");
    srv.removeAllListeners("message");
    await echo.endAsync();
    // Second floor: the same echo with one durable SQLite commit (WAL, FULL) before each reply:
    // the least any bank that records a command before answering could do.
    const db = new Database(join(dir, "floor.db"));
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${SYNC}`);
    db.exec("CREATE TABLE t (id TEXT)");
    const ins = db.prepare("INSERT INTO t VALUES (?)");
    const durableEcho = await broker.client({ clean: true });
    await durableEcho.subscribeAsync("bench/cmd2", { qos: 1 });
    durableEcho.on("message", (_t, payload) => {
      ins.run(payload.toString());
      durableEcho.publish("bench/reply2", payload, { qos: 1 });
    });
    await srv.subscribeAsync("bench/reply2", { qos: 1 });
    const durable = await roundTrips(srv, N, (i) => srv.publishAsync("bench/cmd2", JSON.stringify({ id: `d${i}` }), { qos: 1 }).then(() => undefined), "bench/reply2");
    srv.removeAllListeners("message");
    await durableEcho.endAsync();
    const commits: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      ins.run(`c${i}`);
      commits.push(performance.now() - t0);
    }
    commits.sort((a, b) => a - b);
    db.close();

    const rt = await bankRuntime(example, join(dir, "data"), broker.url, { synchronous: SYNC });
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
    const note =
      `${N} sequential set-compartment commands (one ${SYNC === "FULL" ? "durable " : ""}commit each), Nagle off both sides; ` +
      `floor: a QoS 1 echo client committing each message to SQLite (${SYNC}) before replying; a bare echo: p50 ${round(pct(bare, 50))} / p99 ${round(pct(bare, 99))} ms`;
    emit({ metric: "command_rtt_p50", value: round(pct(ours, 50)), unit: "ms", floor: round(pct(durable, 50)), target: null, note });
    emit({ metric: "command_rtt_p99", value: round(pct(ours, 99)), unit: "ms", floor: round(pct(durable, 99)), target: 3, note });
    inBank.sort((a, b) => a - b);
    emit({
      metric: "command_in_bank_p99",
      value: round(pct(inBank, 99)),
      unit: "ms",
      floor: round(pct(commits, 99)),
      target: null,
      note: `inside the bank, message in to reply out (p50 ${round(pct(inBank, 50))} ms); floor: one ${SYNC === "FULL" ? "durable " : ""}SQLite commit`,
    });
  } finally {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
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
