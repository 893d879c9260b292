// npm run bench: one JSON object per line, {metric, value, unit, floor, target}, each figure beside a
// floor measured in the same run on the same machine. Each benchmark runs in its own child process
// so one does not inflate another's memory or warm another's caches.
//
//   node dist/scripts/bench.js            all of them
//   node dist/scripts/bench.js latency    one (growth | latency | latency-cpu | startup | rss | drain | command | fleet | scale | keywire | idle | kill | fuzz | soak)
//   latency-cpu (or BENCH_SYNC=NORMAL … latency)  the decision path without its fsync: the CPU part alone
//   BENCH_BROKERS=nats,rabbitmq … drain     drain and command on those engines only (bench-sync.ts)
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parseConfig } from "../src/config/load.js";
import { secretHash } from "../src/domain/credentials.js";
import { loadDeviceKey } from "../src/ledger/datadir.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { silentLogger } from "../src/log.js";
import { Runtime } from "../src/runtime.js";
import { BENCH_FLAGS, emit, median, memoryBreakdown, pct, round, timeToReady, tmp, type Line } from "./bench-common.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const MAIN = join(ROOT, "dist/lockerd/lockerd.js");
/** The V8 flags lockerd runs with (package.json start, systemd/lockerd.service, main.ts shebang):
 *  a 1 MiB young generation and size-first heap growth keep RSS ~15 MB lower (measured here);
 *  decision latency did not change measurably. */
const exampleConfig = JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as Record<string, unknown>;

type RawConfig = Record<string, Record<string, unknown>>;

async function benchBank(dir: string, patch: (cfg: RawConfig) => void, synchronous: "FULL" | "NORMAL") {
  const raw = structuredClone(exampleConfig) as RawConfig;
  raw.log = { level: "error" };
  raw.hardware = { ...raw.hardware, openDelayMs: 0, timeScale: 0 };
  raw.locks = { ...raw.locks, pulseMs: 50 };
  patch(raw);
  const rt = new Runtime({ config: parseConfig(raw), dataDir: join(dir, "data"), log: silentLogger(), version: "bench", simSocket: false, synchronous });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  const courier = rt.ledger.person("courier-1")!;
  const codes: string[] = [];
  rt.bank.on("codeIssued", (n) => codes.push(n.code));
  /** Resolves when a door is seen open (the simulated spring). */
  const opened = (compartment: string) =>
    new Promise<void>((resolve) => {
      const lock = rt.bank.layoutOf(compartment).lock;
      if (hw.doors.read(lock) === "open") return resolve();
      const on = (ch: number, state: string) => {
        if (ch !== lock || state !== "open") return;
        hw.doors.off("change", on);
        resolve();
      };
      hw.doors.on("change", on);
    });
  /** A courier deposit through the bank's own methods; returns the pickup code. */
  const deposit = async (): Promise<{ code: string; compartment: string }> => {
    const t = rt.bank.beginDeposit("bench", "S", courier);
    if (!(await t.result).opened) throw new Error("deposit door did not open");
    hw.doors.set(rt.bank.layoutOf(t.compartment).lock, "closed");
    rt.bank.completeDeposit(t.parcel!, "1001", courier.id);
    return { code: codes.pop()!, compartment: t.compartment };
  };
  return { rt, hw, deposit, opened };
}

/**
 * Decision latency: keypad '#' reaching the bank → unlock command reaching the lock driver, with
 * 100,000 live codes and 50,000 badge holders (BENCH_LIVE_CODES, BENCH_PEOPLE). The floor is one
 * single-row commit to a database beside the ledger, with the ledger's durability, made at the
 * same point of the same cycle (right after a deposit, where every other pickup is timed): an
 * fsync costs more after a pause than in a tight loop (here 0.3 ms back to back, 2-4 ms after a
 * few ms of quiet), so a floor measured in a loop of its own flatters the disk.
 * `synchronous` FULL: the durable path; NORMAL: the CPU part (no fsync on either side).
 */
export async function decisionLatency(synchronous: "FULL" | "NORMAL", opts: { liveCodes?: number; people?: number; samples?: number } = {}): Promise<{ samples: number[]; floor: number[]; live: number }> {
  const dir = tmp();
  const LIVE_CODES = opts.liveCodes ?? Number(process.env.BENCH_LIVE_CODES ?? 100_000);
  const PEOPLE = opts.people ?? Number(process.env.BENCH_PEOPLE ?? 50_000);
  const SAMPLES = opts.samples ?? Number(process.env.BENCH_SAMPLES ?? 2000);
  try {
    // 8-digit codes: 100,000 live 6-digit codes would let one random guess in ten open a door.
    const { rt, hw, deposit, opened } = await benchBank(dir, (cfg) => (cfg.codes = { length: 8 }), synchronous);
    const key = loadDeviceKey(join(dir, "data")); // the bank's own key, as its codes are hashed
    const now = Date.now();
    rt.ledger.transact((tx) => {
      for (let i = 0; i < PEOPLE; i++) {
        const id = `bench-${i}`;
        tx.upsertPerson({ id, name: `Person ${i}`, roles: ["recipient"], number: String(100_000 + i), active: true }, now);
        tx.insertCredential("badge", secretHash(key, "badge", (0x10000000 + i).toString(16)), { personId: id }, now);
      }
      for (let i = 0; i < LIVE_CODES; i++) {
        tx.insertCredential("code", secretHash(key, "code", String(10_000_000 + i * 7)), { parcelId: `bench-parcel-${i}`, personId: `bench-${i % Math.max(1, PEOPLE)}` }, now);
      }
    });
    rt.ledger.checkpoint();
    const live = rt.ledger.liveCodeCount();
    const db = new Database(join(dir, "floor.db"));
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${synchronous}`);
    db.exec("CREATE TABLE t (x INTEGER)");
    const ins = db.prepare("INSERT INTO t VALUES (?)");
    let t1 = 0;
    hw.on("unlock", () => (t1 = performance.now()));
    const samples: number[] = [];
    const floor: number[] = [];
    for (let i = 0; samples.length < SAMPLES || floor.length < SAMPLES; i++) {
      const { code, compartment } = await deposit();
      hw.keypad.keys(code); // the digits arrive first; the clock starts with '#'
      if (i % 2 === 0) {
        const f0 = performance.now();
        ins.run(i);
        floor.push(performance.now() - f0);
      }
      t1 = 0;
      const t0 = performance.now();
      hw.keypad.keys("#");
      if (!t1) throw new Error(`pickup did not reach the lock: ${hw.display.lines.join(" | ")}`);
      if (i % 2 === 1) samples.push(t1 - t0);
      await opened(compartment);
      hw.doors.set(rt.bank.layoutOf(compartment).lock, "closed");
    }
    db.close();
    await rt.stop();
    samples.sort((a, b) => a - b);
    floor.sort((a, b) => a - b);
    return { samples, floor, live };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function latency(): Promise<void> {
  if (process.env.BENCH_SYNC === "NORMAL") return latencyCpu();
  const { samples, floor, live } = await decisionLatency("FULL");
  const note = `${live} live codes, ${process.env.BENCH_PEOPLE ?? 50_000} people with badges, ${samples.length} pickups; floor: one durable (synchronous=FULL) single-row SQLite commit at the same point of the cycle`;
  emit({ metric: "decision_latency_p50", value: round(pct(samples, 50)), unit: "ms", floor: round(pct(floor, 50)), target: null, note });
  emit({ metric: "decision_latency_p99", value: round(pct(samples, 99)), unit: "ms", floor: round(pct(floor, 99)), target: 1.5, note });
}

/** The same without fsync on either side (synchronous=NORMAL): what lockerd itself spends. */
async function latencyCpu(): Promise<void> {
  const { samples, floor, live } = await decisionLatency("NORMAL");
  const note = `synchronous=NORMAL (no fsync): the CPU part; ${live} live codes, ${process.env.BENCH_PEOPLE ?? 50_000} people with badges, ${samples.length} pickups; floor: one single-row commit, NORMAL`;
  emit({ metric: "decision_latency_cpu_p50", value: round(pct(samples, 50)), unit: "ms", floor: round(pct(floor, 50)), target: null, note });
  emit({ metric: "decision_latency_cpu_p99", value: round(pct(samples, 99)), unit: "ms", floor: round(pct(floor, 99)), target: 0.5, note });
}

/** Start to ready of the compiled daemon (data directory already initialised), against node loading the same dependencies. */
async function startup(): Promise<void> {
  const dir = tmp();
  const RUNS = 7;
  try {
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ ...exampleConfig, log: { level: "info" } }));
    const once = () => timeToReady(MAIN, cfg, join(dir, "data"));
    await once(); // first start creates the ledger; the figure is for an ordinary (re)start
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await once());
    const floors: number[] = [];
    const deps = "await Promise.all(['better-sqlite3','zod','pino'].map((m) => import(m)))";
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      spawnSync(process.execPath, [...BENCH_FLAGS, "--input-type=module", "-e", deps], { cwd: ROOT });
      floors.push(performance.now() - t0);
    }
    const floor = median(floors);
    emit({ metric: "start_to_ready", value: round(median(runs), 1), unit: "ms", floor: round(floor, 1), target: round(floor * 1.5, 1), note: `median of ${RUNS}, daemon flags ${BENCH_FLAGS.join(" ")}; floor: node with the same flags importing better-sqlite3, zod, pino and exiting` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * RSS after 10,000 deposit + pickup cycles through the keypad, against node with the dependencies
 * loaded, and where it is: V8 heap, code (file-backed: node, libraries, addons), native (malloc:
 * SQLite's page cache, statements, libuv; thread stacks), each beside the floor's.
 */
async function rss(): Promise<void> {
  const dir = tmp();
  const PICKUPS = Number(process.env.BENCH_PICKUPS ?? 10_000);
  try {
    const { rt, hw, deposit, opened } = await benchBank(dir, () => {}, "NORMAL");
    globalThis.gc?.();
    const started = await memoryBreakdown();
    for (let i = 0; i < PICKUPS; i++) {
      const { code, compartment } = await deposit();
      hw.keypad.keys(`${code}#`);
      await opened(compartment);
      hw.doors.set(rt.bank.layoutOf(compartment).lock, "closed");
    }
    const picked = rt.ledger.counts().events;
    globalThis.gc?.();
    const mem = await memoryBreakdown();
    if (process.env.BENCH_DEBUG) process.stderr.write(`${JSON.stringify({ started, after: mem, usage: process.memoryUsage() })}\n`);
    await rt.stop();
    const floorRun = spawnSync(
      process.execPath,
      [
        "--expose-gc",
        ...BENCH_FLAGS,
        "--input-type=module",
        "-e",
        "await Promise.all(['better-sqlite3','zod','pino'].map((m) => import(m))); const D = (await import('better-sqlite3')).default; new D(':memory:'); gc(); const { memoryBreakdown } = await import('./dist/scripts/bench-common.js'); console.log(JSON.stringify(await memoryBreakdown()))",
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    const floor = JSON.parse(floorRun.stdout.trim()) as typeof mem;
    const note = `${PICKUPS} pickups, ${picked} ledger events, daemon flags ${BENCH_FLAGS.join(" ")}; floor: node with the dependencies loaded, same flags`;
    emit({ metric: "rss_after_10k_pickups", value: round(mem.rss, 1), unit: "MB", floor: round(floor.rss, 1), target: 75, note });
    emit({ metric: "rss_at_ready", value: round(started.rss, 1), unit: "MB", floor: round(floor.rss, 1), target: null, note: "the same bank before its first pickup" });
    const parts = "part of rss_after_10k_pickups (MiB), from /proc/self/smaps";
    emit({ metric: "rss_part_v8_heap", value: round(mem.v8Heap, 1), unit: "MB", floor: round(floor.v8Heap, 1), target: null, note: `${parts}: V8 heap spaces, ${round(mem.v8Live, 1)} MB of it live (floor ${round(floor.v8Live, 1)}): lockerd's modules, schemas and objects` });
    emit({ metric: "rss_part_code", value: round(mem.code, 1), unit: "MB", floor: round(floor.code, 1), target: null, note: `${parts}: file-backed pages: node's binary, libraries, addons` });
    emit({ metric: "rss_part_native", value: round(mem.native, 1), unit: "MB", floor: round(floor.native, 1), target: null, note: `${parts}: anonymous memory outside the V8 heap: malloc (SQLite page cache ≤ 2 MiB, statements, libuv), thread stacks` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Bounded growth (a busy bank's year): ledger bytes per deposit + pickup (the file after a
 * checkpoint), bytes written per idle hour by the compiled daemon (from /proc/PID/io while it sits
 * idle), and the ledger's size after a year at 200 pickups a day with retention (sync.retentionDays
 * 30: about 30 days of history stay) and without (every event kept).
 */
async function growth(): Promise<void> {
  const dir = tmp();
  const CYCLES = Number(process.env.BENCH_PICKUPS ?? 2000);
  const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
  try {
    const { rt, hw, deposit, opened } = await benchBank(dir, () => undefined, "FULL");
    const file = join(dir, "data", "ledger.db");
    const size = () => {
      rt.ledger.checkpoint();
      rt.ledger.db.pragma("wal_checkpoint(TRUNCATE)");
      return statSync(file).size;
    };
    const before = size();
    const eventsBefore = rt.ledger.counts().events;
    for (let i = 0; i < CYCLES; i++) {
      const { code, compartment } = await deposit();
      hw.keypad.keys(`${code}#`);
      await opened(compartment);
      hw.doors.set(rt.bank.layoutOf(compartment).lock, "closed");
    }
    const perPickup = (size() - before) / CYCLES;
    const eventsPerPickup = (rt.ledger.counts().events - eventsBefore) / CYCLES;
    await rt.stop();

    // The compiled daemon left alone: what it writes in an idle spell, scaled to an hour.
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ ...exampleConfig, log: { level: "warn" } }));
    const child = spawn(process.execPath, [...BENCH_FLAGS, MAIN, "--config", cfg, "--data", join(dir, "idle")], { stdio: ["ignore", "pipe", "inherit"] });
    const written = () => Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${child.pid}/io`, "utf8"))?.[1] ?? NaN);
    await new Promise((r) => setTimeout(r, 3000)); // started, first checkpoint done
    const w0 = written();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const idleHour = ((written() - w0) * 3600) / IDLE_S;
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));

    const perDay = 200 * perPickup;
    const note = `${CYCLES} deposits + pickups (${round(eventsPerPickup, 1)} events each); idle: ${IDLE_S} s of the compiled daemon, scaled`;
    emit({ metric: "ledger_bytes_per_pickup", value: Math.round(perPickup), unit: "B", floor: null, target: null, note });
    emit({ metric: "idle_hour_bytes_written", value: Math.round(idleHour), unit: "B", floor: null, target: 1_048_576, note: "from /proc/PID/io write_bytes" });
    emit({ metric: "ledger_year_busy_retention_30d", value: round((30 * perDay + before) / 2 ** 20, 1), unit: "MB", floor: null, target: null, note: "200 pickups a day, sync.retentionDays 30" });
    emit({ metric: "ledger_year_busy_no_retention", value: round((365 * perDay + before) / 2 ** 20, 1), unit: "MB", floor: null, target: null, note: "200 pickups a day, every event kept" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MODES: Record<string, () => Promise<void>> = {
  growth,
  latency,
  "latency-cpu": latencyCpu,
  startup,
  rss,
  // The other modes' modules (mqtt.js, the brokers, the fuzzers) load only for their own mode: a
  // static import put them in every mode's process, 8 MB of heap and code the rss figure charged
  // to lockerd, which never loads them on a bank without a server.
  drain: async () => (await import("./bench-sync.js")).drain(exampleConfig, emit),
  command: async () => (await import("./bench-sync.js")).command(exampleConfig, emit),
  fleet: async () => (await import("./bench-sync.js")).fleet(exampleConfig, emit),
  kill: async () => (await import("./bench-kill.js")).killHarness((o) => emit(o as unknown as Line), { kills: Number(process.env.BENCH_KILLS ?? 50) }),
  fuzz: async () => (await import("./fuzz.js")).fuzz((o) => emit(o as unknown as Line), { inputs: Number(process.env.BENCH_FUZZ_INPUTS ?? 100_000), seed: Number(process.env.BENCH_SEED ?? 20261125) }),
  scale: async () => (await import("./bench-scale.js")).scale(exampleConfig, emit),
  keywire: async () => (await import("./bench-wire.js")).keyToWire(exampleConfig, emit),
  idle: async () => (await import("./bench-wire.js")).idle(exampleConfig, emit),
  soak: async () => (await import("./soak.js")).soak((o) => emit(o as unknown as Line), { operations: Number(process.env.BENCH_SOAK_OPS ?? 200_000) }),
};

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode) {
    const run = MODES[mode];
    if (!run) throw new Error(`unknown benchmark ${mode}; one of ${Object.keys(MODES).join(", ")}`);
    return run();
  }
  for (const m of Object.keys(MODES)) {
    // The fleet is 1,000 banks in one process, not one bank: a 1 MiB young generation would have it
    // collecting garbage all the time. Every other mode measures lockerd as it runs.
    const flags = m === "fleet" ? [] : BENCH_FLAGS;
    const r = spawnSync(process.execPath, ["--expose-gc", ...flags, SELF, m], { stdio: ["ignore", "inherit", "inherit"] });
    if (r.status !== 0) throw new Error(`benchmark ${m} failed (${r.status})`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
