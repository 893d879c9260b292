// Growth over years: decision latency and start-to-ready of a bank holding 1k, 100k and 1M live
// codes, and one whose ledger holds 10M events (a busy bank's years without retention), each
// against the smallest; the ledger's bytes per event and what retention does to it.
//
// The ledgers are built fast, not through the bank API: a bank is started once (ledger, key,
// identity), then codes, people and events are bulk-inserted in one transaction each, events as a
// recursive SQL statement. Only the last 1,000 events are hashed for real (what a start verifies);
// the events the bank wrote at its first start are chained again after them.
//   BENCH_SCALE_CODES   live codes per bank, comma separated (1000,100000,1000000)
//   BENCH_SCALE_EVENTS  events in the big ledger (1,000,000; 10000000 for a busy bank's years: ~5 min, ~4 GB)
import { createHash } from "node:crypto";
import { rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parseConfig } from "../src/config/load.js";
import { secretHash } from "../src/domain/credentials.js";
import { eventHash, type LedgerEvent } from "../src/domain/events.js";
import { loadDeviceKey } from "../src/ledger/datadir.js";
import { Ledger, toEvent } from "../src/ledger/ledger.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { PRUNE_BATCH, Retention } from "../src/bank/storage.js";
import { silentLogger } from "../src/log.js";
import { Runtime } from "../src/runtime.js";
import { median, pct, round, timeToReady, tmp, type Emit } from "./bench-common.js";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = join(ROOT, "dist/lockerd/lockerd.js");
const PEOPLE = 50_000;
const TAIL = 1000;

function rawConfig(example: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const raw = structuredClone(example) as Record<string, Record<string, unknown>>;
  raw.log = { level: "info" };
  raw.hardware = { ...raw.hardware, openDelayMs: 0, timeScale: 0 };
  raw.locks = { ...raw.locks, pulseMs: 50 };
  raw.codes = { length: 8 };
  // The years of history stay (retention at its longest): the start and the pickups see them all.
  // What retention would do to such a ledger is measured apart (retention_first_prune_ms).
  raw.sync = { ...raw.sync, retentionDays: 3650 };
  return raw;
}

/** A bank in `dataDir` with `codes` live codes, PEOPLE badge holders and about `events` events. */
export async function build(example: Record<string, unknown>, dataDir: string, codes: number, events: number): Promise<void> {
  const rt = new Runtime({ config: parseConfig(rawConfig(example)), dataDir, log: silentLogger(), version: "bench", simSocket: false, adminSocket: false });
  await rt.start();
  await rt.stop();
  const key = loadDeviceKey(dataDir);
  const db = new Database(join(dataDir, "ledger.db"));
  db.pragma("synchronous = OFF");
  const now = Date.now();
  db.transaction(() => {
    const person = db.prepare("INSERT INTO people (id, name, roles, number, active, updated_at) VALUES (?, ?, 'recipient', ?, 1, ?)");
    const cred = db.prepare("INSERT INTO credentials (kind, hash, person_id, parcel_id, created_at) VALUES (?, ?, ?, ?, ?)");
    for (let i = 0; i < PEOPLE; i++) {
      person.run(`bench-${i}`, `Person ${i}`, String(100_000 + i), now);
      cred.run("badge", secretHash(key, "badge", (0x10000000 + i).toString(16)), `bench-${i}`, null, now);
    }
    for (let i = 0; i < codes; i++) cred.run("code", secretHash(key, "code", String(10_000_000 + i * 7)), `bench-${i % PEOPLE}`, `bench-parcel-${i}`, now);
  })();
  if (events > 0) {
    // The bank's own events move to the end of the chain; fillers before them, the last TAIL hashed.
    const own = (db.prepare("SELECT * FROM events ORDER BY seq").all() as Record<string, unknown>[]).map((r) => toEvent(r));
    const fill = Math.max(0, events - own.length);
    const cheap = Math.max(0, fill - TAIL);
    const span = 3 * 365 * 24 * 3600 * 1000; // three years of history
    const ins = db.prepare("INSERT INTO events (seq, id, ts, type, compartment, parcel, actor, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    db.transaction(() => {
      db.exec("DELETE FROM events");
      db.prepare(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO events (seq, id, ts, type, compartment, parcel, actor, data, prev_hash, hash)
         SELECT i, lower(hex(randomblob(16))), ? + i * ?,
                CASE i % 3 WHEN 0 THEN 'parcel.deposited' WHEN 1 THEN 'pickup.started' ELSE 'parcel.picked_up' END,
                'A' || printf('%02d', 1 + i % 12), 'parcel-' || (i / 3), 'p-' || (1000 + i % 500),
                '{"terminal":"keypad-1","via":"code"}', lower(hex(randomblob(32))), lower(hex(randomblob(32)))
         FROM n`,
      ).run(cheap, now - span, Math.floor(span / Math.max(1, fill)));
      let prev = cheap ? (db.prepare("SELECT hash FROM events WHERE seq = ?").get(cheap) as { hash: string }).hash : "0".repeat(64);
      const add = (e: Omit<LedgerEvent, "hash" | "prevHash">) => {
        const full = { ...e, prevHash: prev };
        const hash = eventHash(full);
        ins.run(full.seq, full.id, full.ts, full.type, full.compartment, full.parcel, full.actor, JSON.stringify(full.data), prev, hash);
        prev = hash;
      };
      for (let i = cheap + 1; i <= fill; i++) {
        const data = { terminal: "keypad-1", via: "code" };
        add({ seq: i, id: createHash("md5").update(String(i)).digest("hex"), ts: now - span + i * Math.floor(span / fill), type: "parcel.picked_up", compartment: "A01", parcel: `parcel-${i}`, actor: "p-1001", data });
      }
      own.forEach((e, k) => add({ seq: fill + k + 1, id: e.id, ts: e.ts, type: e.type, compartment: e.compartment, parcel: e.parcel, actor: e.actor, data: e.data }));
    })();
  }
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
}

/** Median start-to-ready of the compiled daemon on `dataDir`, `runs` times. */
async function startToReady(example: Record<string, unknown>, dir: string, dataDir: string, runs: number): Promise<number> {
  const cfg = join(dir, "config.json");
  writeFileSync(cfg, JSON.stringify(rawConfig(example)));
  const once = () => timeToReady(MAIN, cfg, dataDir);
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) xs.push(await once());
  return median(xs);
}

/** Decision latency (p50, p99) of the bank in `dataDir`, in process, durable. */
async function latencyOn(example: Record<string, unknown>, dataDir: string, samples: number): Promise<{ p50: number; p99: number }> {
  const raw = rawConfig(example);
  raw.log = { level: "error" };
  const rt = new Runtime({ config: parseConfig(raw), dataDir, log: silentLogger(), version: "bench", simSocket: false, adminSocket: false });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  const courier = rt.ledger.person("courier-1")!;
  const codes: string[] = [];
  rt.bank.on("codeIssued", (n) => codes.push(n.code));
  let t1 = 0;
  hw.on("unlock", () => (t1 = performance.now()));
  const opened = (lock: number) =>
    new Promise<void>((resolve) => {
      if (hw.doors.read(lock) === "open") return resolve();
      const on = (ch: number, state: string) => {
        if (ch !== lock || state !== "open") return;
        hw.doors.off("change", on);
        resolve();
      };
      hw.doors.on("change", on);
    });
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = rt.bank.beginDeposit("bench", "S", courier);
    if (!(await t.result).opened) throw new Error("deposit door did not open");
    const lock = rt.bank.layoutOf(t.compartment).lock;
    hw.doors.set(lock, "closed");
    rt.bank.completeDeposit(t.parcel!, "1001", courier.id);
    hw.keypad.keys(codes.pop()!);
    t1 = 0;
    const t0 = performance.now();
    hw.keypad.keys("#");
    if (!t1) throw new Error(`pickup did not reach the lock: ${hw.display.lines.join(" | ")}`);
    xs.push(t1 - t0);
    await opened(lock);
    hw.doors.set(lock, "closed");
  }
  await rt.stop();
  xs.sort((a, b) => a - b);
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

export async function scale(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const sizes = (process.env.BENCH_SCALE_CODES ?? "1000,100000,1000000").split(",").map(Number);
  const EVENTS = Number(process.env.BENCH_SCALE_EVENTS ?? 1_000_000);
  const SAMPLES = Number(process.env.BENCH_SCALE_SAMPLES ?? 600);
  const RUNS = 5;
  const rows: { label: string; start: number; p50: number; p99: number }[] = [];
  const cases = [...sizes.map((codes) => ({ label: `${codes} live codes`, codes, events: 0 })), { label: `${EVENTS} events`, codes: sizes[0]!, events: EVENTS }];
  for (const c of cases) {
    const dir = tmp();
    try {
      const dataDir = join(dir, "data");
      const t0 = performance.now();
      await build(example, dataDir, c.codes, c.events);
      const buildS = (performance.now() - t0) / 1000;
      const start = await startToReady(example, dir, dataDir, RUNS);
      const lat = await latencyOn(example, dataDir, SAMPLES);
      rows.push({ label: c.label, start, ...lat });
      const note = `${c.label}, ${PEOPLE} badge holders; built in ${round(buildS, 1)} s; start: median of ${RUNS}; latency: ${SAMPLES} pickups, durable`;
      const tag = c.events ? `${c.events / 1e6}M_events` : c.codes >= 1e6 ? `${c.codes / 1e6}M_codes` : `${c.codes / 1e3}k_codes`;
      const base = rows[0]!;
      emit({ metric: `scale_start_to_ready_${tag}`, value: round(start, 1), unit: "ms", floor: round(base.start, 1), target: round(base.start * 1.5, 1), note: `${note}; floor: the smallest bank` });
      emit({ metric: `scale_decision_p99_${tag}`, value: round(lat.p99), unit: "ms", floor: round(base.p99), target: round(base.p99 * 1.5), note: `${note}; p50 ${round(lat.p50)} ms; floor: the smallest bank` });
      if (c.events) {
        const file = join(dataDir, "ledger.db");
        const ledger = new Ledger(file, { now: Date.now, synchronous: "NORMAL" });
        const { events } = ledger.counts();
        const pages = (q: string) => ledger.db.pragma(q, { simple: true }) as number;
        const size = statSync(file).size;
        const eventsBytes = (ledger.db.prepare("SELECT sum(pgsize) AS b FROM dbstat WHERE name IN ('events', 'events_parcel')").get() as { b: number | null }).b;
        emit({ metric: "ledger_bytes_per_event", value: Math.round((eventsBytes ?? size) / events), unit: "B", floor: null, target: null, note: `${events} events: the events table and its index over the count (file ${round(size / 2 ** 20, 1)} MB with ${c.codes} codes and ${PEOPLE} people)` });
        // Retention as the bank runs it (sync.retentionDays 30, no server, batches with pauses):
        // what stays, how long the first pass takes, and the longest batch (the event loop held).
        const batches: number[] = [];
        const prune = ledger.prune.bind(ledger);
        ledger.prune = (...a: Parameters<Ledger["prune"]>) => {
          const t = performance.now();
          try {
            return prune(...a);
          } finally {
            batches.push(performance.now() - t);
          }
        };
        const p0 = performance.now();
        const pruned = await new Retention({ ledger, days: 30, published: false, now: Date.now, log: silentLogger() }).pass();
        const pruneMs = performance.now() - p0;
        ledger.checkpoint();
        ledger.db.pragma("wal_checkpoint(TRUNCATE)");
        const kept = ledger.counts().events;
        const free = pages("freelist_count") * pages("page_size");
        batches.sort((a, b) => a - b);
        emit({
          metric: "retention_first_prune_ms",
          value: round(pruneMs, 0),
          unit: "ms",
          floor: null,
          target: null,
          note: `${pruned.events} of ${events} events deleted in ${batches.length} batches of ${PRUNE_BATCH} (30 days kept: ${kept} events); the file stays ${round(statSync(file).size / 2 ** 20, 1)} MB with ${round(free / 2 ** 20, 1)} MB free pages that new events reuse (VACUUM gives them back)`,
        });
        emit({
          metric: "retention_prune_batch_max_ms",
          value: round(batches.at(-1) ?? 0, 1),
          unit: "ms",
          floor: null,
          target: null,
          note: `the longest the event loop is held by the first prune (one batch, synchronous=NORMAL); p50 ${round(pct(batches, 50), 1)} ms, p99 ${round(pct(batches, 99), 1)} ms`,
        });
        ledger.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
