// The data directory's disk, watched: free space against a floor (alarm.disk_low long before it is
// full), and a ledger whose writes fail (SQLITE_FULL, I/O errors) tried again until one succeeds.
//
//   every checkS: statfs(dataDir) ─▶ below minFreeMb? ─▶ alarm.disk_low (once) … above again ─▶ alarm.cleared
//   ledger.storageProblem ─▶ probe write (storage.recovered) ─▶ ok? ─▶ onRecovered (doors re-read, flows settled)
//
// While the disk refuses writes the bank refuses whatever needs one: no door opens without its
// authorization on record. The daemon stays up; status, telemetry and selftest say "disk full".
//
// The ledger file itself (LedgerCheck): the start checked the tables that do not grow, and the
// log's tail, before serving (Ledger.checkForStart, verifyTail); the whole file is checked right
// after, and then daily, in a child process at low priority ─▶ damaged? ─▶ alarm.ledger_damaged
// (once), retention stops touching old events, status shows it.
import { spawn, type ChildProcess } from "node:child_process";
import { statfsSync } from "node:fs";
import { setPriority } from "node:os";
import { isLockerError } from "../errors.js";
import type { Ledger } from "../ledger/ledger.js";
import { BETTER_SQLITE3, CHECK_SCRIPT } from "../ledger/quick-check.js";
import type { Logger } from "../log.js";

export interface StorageStatus {
  /** The data directory. */
  path: string;
  freeBytes: number | null;
  minFreeBytes: number;
  /** ok; low: under the floor; full: the ledger's writes fail. */
  state: "ok" | "low" | "full";
  /** Since when the state is what it is (null: ok). */
  since: number | null;
  detail: string | null;
}

/** How often old events are pruned (RetentionDeps). */
const PRUNE_EVERY_MS = 3_600_000;

export interface RetentionDeps {
  ledger: Ledger;
  /** Events older than this many days go (sync.retentionDays), custody of parcels still in the bank kept. */
  days: number;
  /** With a server link: only events the broker has acknowledged. */
  published: boolean;
  now: () => number;
  log: Logger;
  /** True while pruning must wait (the clock is not synchronized: sync/clock.ts). */
  paused?: () => boolean;
}

/** At most this many events go in one transaction (here ~4 ms; a Pi several times that). */
export const PRUNE_BATCH = 2000;
/** The pause between two batches of a pass: the keypad, the readers and the boards go first. */
const PRUNE_PAUSE_MS = 20;

/**
 * Bounded growth, with or without a server: every hour the oldest events past retention are
 * deleted, a prefix of the chain (Ledger.prune says what stays: the history of every parcel still
 * in the bank, what the broker has not acknowledged, the newest event). A pass is batches of
 * PRUNE_BATCH events with a pause between them, so the first prune of a bank that kept years of
 * history (10M events: tens of seconds of deleting) never holds the event loop: a start is ready at
 * once and a code typed meanwhile is answered between two batches.
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<{ events: number; commands: number }> | undefined;
  private stopped = false;
  constructor(private readonly deps: RetentionDeps) {}

  start(): void {
    void this.pass();
    this.timer = setInterval(() => void this.pass(), PRUNE_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One batch (at most `limit` events), or undefined while paused or when it failed. */
  prune(limit = PRUNE_BATCH): ReturnType<Ledger["prune"]> | undefined {
    if (this.deps.paused?.()) return undefined;
    const before = this.deps.now() - this.deps.days * 86_400_000;
    try {
      return this.deps.ledger.prune(before, { published: this.deps.published, limit });
    } catch (e) {
      this.deps.log.warn({ err: e }, "prune failed");
      return undefined;
    }
  }

  /** Batches until nothing past retention is left (one pass at a time); the totals. */
  pass(): Promise<{ events: number; commands: number }> {
    this.running ??= (async () => {
      const total = { events: 0, commands: 0 };
      // A stop while the pass pauses ends it there: the ledger may be closing.
      for (let more = true; more && !this.stopped; ) {
        const n = this.prune(PRUNE_BATCH);
        if (!n) break;
        total.events += n.events;
        total.commands += n.commands;
        more = n.more;
        if (more) await new Promise((r) => setTimeout(r, PRUNE_PAUSE_MS));
      }
      if (total.events || total.commands) this.deps.log.info(total, "pruned events and answered commands past retention");
      return total;
    })().finally(() => (this.running = undefined));
    return this.running;
  }
}

export interface StorageDeps {
  dataDir: string;
  ledger: Ledger;
  minFreeMb: number;
  checkS: number;
  now: () => number;
  log: Logger;
  /** The ledger takes writes again: re-read the doors, settle what waited. */
  onRecovered: () => void;
}

/** Recovery needs some room beyond the floor before the low alarm is cleared (no flapping). */
const HYSTERESIS = 1.2;

export class StorageMonitor {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private recovery: NodeJS.Immediate | undefined;
  private lowSince: number | null = null;
  private freeBytes: number | null = null;
  private unmeasurable = false;
  private readonly log: Logger;

  constructor(private readonly deps: StorageDeps) {
    this.log = deps.log.child({ module: "storage" });
  }

  get minFreeBytes(): number {
    return this.deps.minFreeMb * 2 ** 20;
  }

  start(): void {
    // However the ledger becomes writable again (this monitor's probe, or any commit that fits),
    // what could not be recorded meanwhile is caught up: the doors are re-read, flows settled.
    // Deferred, never nested in the commit that cleared the problem: catching up writes again, and
    // on a disk that takes some writes and refuses others, nesting recursed until the stack ran out
    // (a native abort in better-sqlite3: the property test found it).
    this.unsubscribe = this.deps.ledger.onStorage((problem) => {
      if (problem || this.recovery) return;
      this.recovery = setImmediate(() => {
        this.recovery = undefined;
        if (this.deps.ledger.storageProblem) return;
        this.log.warn("ledger writable again");
        try {
          this.deps.onRecovered();
        } catch (e) {
          this.log.error({ err: e }, "recovery after storage full failed");
        }
      });
    });
    this.check();
    this.timer = setInterval(() => this.check(), this.deps.checkS * 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearImmediate(this.recovery);
    this.unsubscribe?.();
  }

  status(): StorageStatus {
    const problem = this.deps.ledger.storageProblem;
    const base = { path: this.deps.dataDir, freeBytes: this.freeBytes, minFreeBytes: this.minFreeBytes };
    if (problem) return { ...base, state: "full", since: problem.since, detail: problem.detail };
    if (this.lowSince !== null) return { ...base, state: "low", since: this.lowSince, detail: `less than ${this.deps.minFreeMb} MB free` };
    return { ...base, state: "ok", since: null, detail: null };
  }

  /** One look at the disk (also what the timer runs). Never throws. */
  check(): void {
    try {
      const fs = statfsSync(this.deps.dataDir);
      if (this.unmeasurable) this.log.info({ freeBytes: fs.bavail * fs.bsize }, "free space measured again");
      this.unmeasurable = false;
      this.freeBytes = fs.bavail * fs.bsize;
    } catch (e) {
      // On change only: not once per check (storage.checkS).
      if (!this.unmeasurable) this.log.warn({ err: e }, "cannot measure free space");
      this.unmeasurable = true;
    }
    const problem = this.deps.ledger.storageProblem;
    if (problem) return this.probe(problem);
    if (this.freeBytes === null) return;
    if (this.lowSince === null && this.freeBytes < this.minFreeBytes) {
      this.lowSince = this.deps.now();
      this.log.error({ path: this.deps.dataDir, freeBytes: this.freeBytes, minFreeBytes: this.minFreeBytes }, "disk space low");
      this.record("alarm.disk_low", { path: this.deps.dataDir, freeBytes: this.freeBytes, minFreeBytes: this.minFreeBytes });
    } else if (this.lowSince !== null && this.freeBytes >= this.minFreeBytes * HYSTERESIS) {
      this.log.info({ freeBytes: this.freeBytes }, "disk space back above the floor");
      this.record("alarm.cleared", { alarm: "disk_low", since: this.lowSince, freeBytes: this.freeBytes });
      this.lowSince = null;
    }
  }

  /** The ledger's writes failed: one small write says whether they work again. */
  private probe(problem: { since: number; detail: string }): void {
    try {
      this.deps.ledger.transact((tx) => tx.event({ type: "storage.recovered", data: { since: problem.since, detail: problem.detail, freeBytes: this.freeBytes } }));
    } catch (e) {
      if (!isLockerError(e)) this.log.error({ err: e }, "storage probe failed");
    }
  }

  private record(type: "alarm.disk_low" | "alarm.cleared", data: Record<string, unknown>): void {
    try {
      this.deps.ledger.transact((tx) => tx.event({ type, data }));
    } catch (e) {
      this.log.error({ err: e, type }, "could not record a storage alarm");
    }
  }
}

/** How often the whole ledger file is checked again after the check right after the start. */
const FULL_CHECK_EVERY_MS = 86_400_000;

export interface LedgerCheckDeps {
  file: string;
  ledger: Ledger;
  now: () => number;
  log: Logger;
  /** Runs the whole file's check, resolving "ok" or the problems (tests); default: a child process. */
  run?: (file: string) => { result: Promise<string>; cancel: () => void };
}

/**
 * The whole ledger file's quick_check, off the start path and off the event loop: once right after
 * the start, then daily. Damage (an SD card's worn-out page in old history, codes, parcels) is an
 * alarm the first time it is seen, never a stop: the tables that do not grow and the log's tail
 * were checked before the bank served, every new event is written at the tail, and a read of a
 * damaged page fails (its request is refused).
 */
export class LedgerCheck {
  private timer: NodeJS.Timeout | undefined;
  private running: { cancel: () => void } | undefined;
  private stopped = false;
  /** Since when the file is known damaged, and what SQLite said (null: not seen). */
  damaged: { since: number; detail: string } | null = null;

  constructor(private readonly deps: LedgerCheckDeps) {}

  start(): void {
    void this.runOnce();
    this.timer = setInterval(() => void this.runOnce(), FULL_CHECK_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.running?.cancel();
  }

  /** One check: "ok", SQLite's problems, "check could not run: …", or undefined (one runs already; stopped). */
  async runOnce(): Promise<string | undefined> {
    if (this.running || this.stopped) return undefined;
    const t0 = Date.now();
    const job = (this.deps.run ?? runCheckProcess)(this.deps.file);
    this.running = job;
    let result: string;
    try {
      result = await job.result;
    } catch (e) {
      if (this.stopped) return undefined;
      // Not damage (the process could not start, ran out of memory): the next check tries again.
      this.deps.log.warn({ ms: Date.now() - t0, err: e }, "ledger file check could not run; tried again with the next one");
      return `check could not run: ${(e as Error).message}`;
    } finally {
      this.running = undefined;
    }
    if (this.stopped) return undefined;
    if (result === "ok") this.deps.log.debug({ ms: Date.now() - t0 }, "ledger file checked: ok");
    else this.raise(result);
    return result;
  }

  /** The first damage seen: alarm.ledger_damaged, once per run of the daemon. */
  private raise(detail: string): void {
    if (this.damaged) return;
    this.damaged = { since: this.deps.now(), detail };
    try {
      this.deps.ledger.transact((tx) => tx.event({ type: "alarm.ledger_damaged", data: { detail: detail.slice(0, 500) } }));
    } catch (e) {
      this.deps.log.error({ err: e, detail }, "ledger.db is damaged, and the alarm could not be recorded");
    }
  }
}

/** CHECK_SCRIPT in a child process at the lowest CPU priority: ended at once by cancel(). */
function runCheckProcess(file: string): { result: Promise<string>; cancel: () => void } {
  let child: ChildProcess | undefined;
  const result = new Promise<string>((resolve, reject) => {
    child = spawn(process.execPath, ["-e", CHECK_SCRIPT, BETTER_SQLITE3, file], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      if (child.pid) setPriority(child.pid, 19);
    } catch {
      // not allowed to lower it: it runs at the daemon's priority
    }
    let out = "";
    let err = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      try {
        resolve((JSON.parse(out) as { result: string }).result);
      } catch {
        reject(new Error(`exit ${code ?? signal}: ${err.trim().slice(0, 300)}`));
      }
    });
  });
  return { result, cancel: () => child?.kill("SIGKILL") };
}
