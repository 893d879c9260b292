// Soak: a long day at the bank, compressed. `operations` steps on the in-process bank (real timers,
// simulated hardware at timeScale 0, the ledger at synchronous NORMAL unless told otherwise), drawn
// from one seed: courier deposits and code pickups through the keypad, wrong codes, badge taps
// (Ada's and Alan's, and unknown ones), server snapshot commands through the CommandRouter.
// Measured over the first and the last 10,000 operations: RSS, active handles, and the keypad's
// decision latency ('#' reaching the terminal → the unlock reaching the lock driver), p50 / p99.
//
//   node --expose-gc dist/scripts/soak.js [--operations N] [--seed S] [--full]
//
// Wrong codes and badges would lock the keypad (and then refuse the pickups that follow): the bank
// runs on a clock that moves one decay period (lockout.decayMs) ahead at each miss, so each miss is
// forgiven before the next, as on a day when they are minutes apart.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../src/config/load.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { silentLogger } from "../src/log.js";
import { Runtime } from "../src/runtime.js";
import { CommandRouter } from "../src/sync/commands.js";
import { pct, round, tmp } from "./bench-common.js";
import { exampleConfig } from "./fuzz/bank.js";
import { Rng } from "./fuzz/rng.js";

export type SoakEmit = (o: Record<string, unknown>) => void;

export interface SoakOptions {
  operations: number;
  seed?: number;
  /** Ledger durability; NORMAL by default (FULL's fsync per commit measures the disk, not lockerd). */
  synchronous?: "FULL" | "NORMAL";
  /** Operations per measured window (first and last). Default 10,000. */
  window?: number;
}

type Op = "deposit" | "pickup" | "wrongCode" | "badge" | "unknownBadge" | "snapshot";
const WEIGHTS: [number, Op][] = [
  [30, "deposit"],
  [28, "pickup"],
  [10, "wrongCode"],
  [8, "badge"],
  [4, "unknownBadge"],
  [20, "snapshot"],
];
const DECAY_MS = 10_000;
/** At most this many parcels wait at once, so a deposit always finds a compartment. */
const MAX_STORED = 14;
const RECIPIENTS = [
  { number: "1001", person: "p-1001", badge: "04A1B2C3" },
  { number: "1002", person: "p-1002", badge: "04A1B2C4" },
  { number: "1003", person: "p-1003", badge: null },
];

interface Snapshot {
  at: number;
  rssMb: number;
  heapMb: number;
  handles: number;
  handleTypes: Record<string, number>;
  events: number;
}

function snapshot(at: number, events: number): Snapshot {
  globalThis.gc?.();
  const mem = process.memoryUsage();
  const types: Record<string, number> = {};
  for (const t of process.getActiveResourcesInfo()) types[t] = (types[t] ?? 0) + 1;
  return { at, rssMb: round(mem.rss / 2 ** 20, 1), heapMb: round(mem.heapUsed / 2 ** 20, 1), handles: process.getActiveResourcesInfo().length, handleTypes: types, events };
}

export async function soak(emit: SoakEmit, opts: SoakOptions): Promise<void> {
  const n = opts.operations;
  const window = Math.min(opts.window ?? 10_000, Math.floor(n / 2));
  const seed = opts.seed ?? 1;
  const rng = new Rng(seed);
  const dir = tmp();
  const raw = exampleConfig();
  raw.log = { level: "error" };
  raw.hardware = { ...raw.hardware, openDelayMs: 0, timeScale: 0 };
  raw.locks = { ...raw.locks, pulseMs: 50 };
  raw.lockout = { threshold: 100, baseDelayMs: 1000, maxDelayMs: 1000, decayMs: DECAY_MS };
  let skew = 0;
  const now = () => Date.now() + skew;
  const rt = new Runtime({ config: parseConfig(raw), dataDir: join(dir, "data"), log: silentLogger(), version: "soak", simSocket: false, adminSocket: false, synchronous: opts.synchronous ?? "NORMAL", now });
  const t0 = performance.now();
  try {
    await rt.start();
    const hw = rt.hardware as SimHardware;
    const router = new CommandRouter({ ledger: rt.ledger, bank: rt.bank, remote: rt.remote, site: "hq", device: "bank-01", clockSkewMs: 120_000, now, log: silentLogger(), replay: () => 0, publishState: () => undefined });
    const issued: string[] = [];
    rt.bank.on("codeIssued", (c) => issued.push(c.code));
    let unlockAt = 0;
    hw.on("unlock", () => (unlockAt ||= performance.now()));
    const lockOf = (id: string) => rt.bank.layoutOf(id).lock;
    const opened = (id: string) =>
      new Promise<void>((resolve, reject) => {
        if (hw.doors.read(lockOf(id)) === "open") return resolve();
        const timer = setTimeout(() => reject(new Error(`${id} did not open: ${hw.display.lines.join(" | ")}`)), 5000);
        const on = (ch: number, state: string) => {
          if (ch !== lockOf(id) || state !== "open") return;
          hw.doors.off("change", on);
          clearTimeout(timer);
          resolve();
        };
        hw.doors.on("change", on);
      });
    /** Until no pulse is queued or on a coil: the next person's '#' does not wait behind the last one's. */
    const settled = async () => {
      for (let spins = 0; rt.bank.actuation.pending > 0; spins++) {
        if (spins > 10_000) throw new Error("the actuation queue never drained");
        await new Promise((r) => setTimeout(r, 0));
      }
    };
    /** The next unlock, for a '#' that did not reach the lock at once. */
    const nextUnlock = () =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`pickup: no unlock within 5 s (${hw.display.lines.join(" | ")})`)), 5000);
        hw.once("unlock", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    const take = async (id: string) => {
      await opened(id);
      hw.doors.set(lockOf(id), "closed");
    };

    /** Parcels waiting, oldest first. */
    const stored: { code: string; compartment: string; person: string }[] = [];
    const counts: Record<string, number> = {};
    const latencies: number[][] = [[], []];
    const windowOf = (i: number) => (i < window ? 0 : i >= n - window ? 1 : -1);
    const snaps: Snapshot[] = [];
    const opsMs: number[] = [0, 0];
    /** Wall time per kind of operation, and CPU time, in each window: what a slowdown comes from. */
    const opMs: Record<string, number>[] = [{}, {}];
    const opCount: Record<string, number>[] = [{}, {}];
    const cpu: { start?: NodeJS.CpuUsage; used?: NodeJS.CpuUsage }[] = [{}, {}];

    const run: Record<Op, (i: number) => Promise<boolean>> = {
      deposit: async () => {
        if (stored.length >= MAX_STORED) return false;
        const who = rng.pick(RECIPIENTS);
        const before = issued.length;
        hw.keypad.keys("*2468#");
        hw.keypad.keys(rng.pick(["1", "1", "2", "3"]));
        const loading = rt.ledger.compartments().find((c) => c.state === "loading");
        if (!loading) {
          // "No L free": the courier gives up (the size menu again; * ends the session)
          if (!/free/.test(hw.display.lines[0] ?? "")) throw new Error(`deposit: no door opened (${hw.display.lines.join(" | ")})`);
          hw.keypad.keys("*");
          counts.noFit = (counts.noFit ?? 0) + 1;
          return true;
        }
        await take(loading.id);
        hw.keypad.keys(`${who.number}#`);
        hw.keypad.keys("*");
        const code = issued[before];
        if (!code) throw new Error(`deposit: no code issued (${hw.display.lines.join(" | ")})`);
        stored.push({ code, compartment: loading.id, person: who.person });
        return true;
      },
      pickup: async (i) => {
        const p = stored.shift();
        if (!p) return false;
        await settled();
        hw.keypad.keys(p.code); // the digits first; the clock starts with '#'
        unlockAt = 0;
        const t = performance.now();
        hw.keypad.keys("#");
        if (!unlockAt) {
          counts.unlockQueued = (counts.unlockQueued ?? 0) + 1;
          await nextUnlock();
        }
        const w = windowOf(i);
        if (w >= 0) latencies[w]!.push(unlockAt - t);
        await take(p.compartment);
        return true;
      },
      wrongCode: async () => {
        let code = rng.digits(6);
        while (stored.some((p) => p.code === code)) code = rng.digits(6);
        hw.keypad.keys(`${code}#`);
        skew += DECAY_MS + 1;
        return true;
      },
      badge: async () => {
        const who = rng.pick(RECIPIENTS.filter((r) => r.badge));
        const mine = stored.filter((p) => p.person === who.person);
        hw.keypad.badge(who.badge!);
        if (!mine.length) {
          hw.keypad.keys("*"); // "No parcels for you": done
          return true;
        }
        for (const p of mine) {
          await take(p.compartment);
          stored.splice(stored.indexOf(p), 1);
        }
        return true;
      },
      unknownBadge: async () => {
        hw.keypad.badge(rng.hex(8).toUpperCase().replace(/^04A1B2C[34]$/, "0BADBAD0"));
        skew += DECAY_MS + 1;
        return true;
      },
      snapshot: async (i) => {
        const reply = await router.handle("snapshot", JSON.stringify({ id: `soak-${i}`, args: {}, issuedAt: now() }));
        if (!reply.ok) throw new Error(`snapshot refused: ${JSON.stringify(reply)}`);
        return true;
      },
    };

    for (let i = 0; i < n; i++) {
      if (i === 0) snaps.push(snapshot(0, rt.ledger.headSeq));
      const w = windowOf(i);
      if (w >= 0 && !cpu[w]!.start) cpu[w]!.start = process.cpuUsage();
      const opT0 = performance.now();
      let op = rng.weighted(WEIGHTS);
      if (!(await run[op](i))) {
        op = op === "deposit" ? "pickup" : "deposit";
        await run[op](i);
      }
      counts[op] = (counts[op] ?? 0) + 1;
      if (w >= 0) {
        const ms = performance.now() - opT0;
        opsMs[w]! += ms;
        opMs[w]![op] = (opMs[w]![op] ?? 0) + ms;
        opCount[w]![op] = (opCount[w]![op] ?? 0) + 1;
        if (i === window - 1 || i === n - 1) cpu[w]!.used = process.cpuUsage(cpu[w]!.start);
      }
      if (i === window - 1 || i === n - 1) snaps.push(snapshot(i + 1, rt.ledger.headSeq));
      // Let the bank's own timers and I/O run between people.
      if (i % 64 === 63) await new Promise((r) => setImmediate(r));
    }
    const [start, first, last] = snaps as [Snapshot, Snapshot, Snapshot];
    const totalS = (performance.now() - t0) / 1000;
    const ratio = (a: number, b: number) => (a ? round(b / a, 3) : null);
    const lat = latencies.map((l) => l.sort((a, b) => a - b));
    const common = { operations: n, window, seed, synchronous: opts.synchronous ?? "NORMAL", gc: typeof globalThis.gc === "function", floor: null, target: null };
    const line = (metric: string, unit: string, a: number, b: number, extra: Record<string, unknown> = {}) =>
      emit({ metric, value: b, unit, first: a, last: b, ratio: ratio(a, b), ...common, ...extra });
    line("soak_rss", "MB", first.rssMb, last.rssMb, { atStart: start.rssMb, heapFirstMb: first.heapMb, heapLastMb: last.heapMb });
    line("soak_handles", "handles", first.handles, last.handles, { atStart: start.handles, firstTypes: first.handleTypes, lastTypes: last.handleTypes });
    line("soak_keypad_latency_p50", "ms", round(pct(lat[0]!, 50)), round(pct(lat[1]!, 50)), { samples: [lat[0]!.length, lat[1]!.length] });
    line("soak_keypad_latency_p99", "ms", round(pct(lat[0]!, 99)), round(pct(lat[1]!, 99)), { samples: [lat[0]!.length, lat[1]!.length] });
    const perOp = (w: number) => Object.fromEntries(Object.entries(opMs[w]!).map(([k, ms]) => [k, round(ms / opCount[w]![k]!, 3)]));
    const cpuMs = (w: number) => round(((cpu[w]!.used?.user ?? 0) + (cpu[w]!.used?.system ?? 0)) / 1000, 0);
    line("soak_ops_per_s", "ops/s", round(window / (opsMs[0]! / 1000), 0), round(window / (opsMs[1]! / 1000), 0), { msPerOpFirst: perOp(0), msPerOpLast: perOp(1) });
    line("soak_cpu_per_window", "ms", cpuMs(0), cpuMs(1), { note: "user + system CPU time of the process over each window's operations" });
    emit({ metric: "soak_total", value: n, unit: "operations", seconds: round(totalS, 1), counts, ledgerEvents: last.events, ...common });
  } finally {
    await rt.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: number) => {
    const at = args.indexOf(name);
    return at >= 0 ? Number(args[at + 1]) : fallback;
  };
  await soak((o) => process.stdout.write(`${JSON.stringify(o)}\n`), {
    operations: flag("--operations", 200_000),
    seed: flag("--seed", 1),
    window: flag("--window", 10_000),
    synchronous: args.includes("--full") ? "FULL" : "NORMAL",
  });
}
