// The bank's clock: whether NTP has set it, when it steps, and what the bank still knows about the
// time when it has not been set. A Raspberry Pi has no RTC: it boots with the time it saved at its
// last shutdown (fake-hwclock) or systemd's build date, and the wall clock jumps, by minutes or
// years, when systemd-timesyncd first reaches a server. What depends on it:
//
//   events      written while the clock is not synchronized carry data.clockUnsynced: true (in the
//               hashed data: the chain's contract is unchanged); a step is recorded as clock.stepped
//               {from, to, deltaMs}, the first synchronization as clock.synchronized. A server
//               corrects such events' ts from them (docs/asyncapi.yaml, "The bank's clock").
//   deadlines   bank/deadlines.ts: never early because of the clock (parcels deposited in this run are
//               moved with each step; older ones count from this start while unsynchronized).
//   commands    sync/commands.ts: while unsynchronized, a command's window is judged against what the
//               bank knows for sure, lowerBound(): the last synchronized time + the uptime since.
//   retention   not while unsynchronized (a clock years ahead would prune what must be kept).
//   status      ClockInfo in `status`, telemetry and lockerctl status.
//
// Synchronized: systemd-timesyncd creates /run/systemd/timesync/synchronized once it has set the
// clock since boot (systemd-timesyncd.service(8)): a stat, no `timedatectl` process. "no" = timesyncd
// runs and has not (yet); "unknown" = no timesyncd (chrony, not Linux): the bank then trusts its
// clock as it is, and still sees steps. A step is seen without any daemon's help: the wall clock
// against the monotonic one (performance.now), checked every CHECK_MS and before a command is judged.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { maxCommandLifetimeMs, type Config } from "../config/schema.js";
import type { Ledger, LedgerTx } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { ClockInfo } from "./contract.js";

export const TIMESYNC_DIR = "/run/systemd/timesync";
/** A change of the wall clock against the monotonic clock larger than this is a step (clock.stepped). */
export const STEP_THRESHOLD_MS = 120_000;
/** How often the clock is looked at (a step, timesyncd's flag). Two stat calls and a subtraction. */
export const CHECK_MS = 5_000;
/** timesyncd's flag is read at most this often (events ask on every append). */
const STATUS_TTL_MS = 1_000;
/** Ledger meta: the bank's clock (ms) when last seen synchronized, written hourly and at stop. */
export const META_LAST_SYNCED = "clock.lastSynced";
const LAST_SYNCED_EVERY_MS = 3_600_000;

export type Synchronized = ClockInfo["synchronized"];

export function clockInfo(now: number, sync: Pick<Config["sync"], "clockSkewS" | "maxCommandLifetimeS">, timesyncDir = TIMESYNC_DIR): ClockInfo {
  return { now, synchronized: timesyncStatus(timesyncDir), skewToleranceMs: sync.clockSkewS * 1000, maxCommandLifetimeMs: maxCommandLifetimeMs(sync) };
}

/** yes: timesyncd set the clock; no: timesyncd runs and has not (yet); unknown: no timesyncd (chrony, not Linux). */
export function timesyncStatus(dir = TIMESYNC_DIR): Synchronized {
  if (existsSync(join(dir, "synchronized"))) return "yes";
  return existsSync(dir) ? "no" : "unknown";
}

export interface ClockStep {
  /** What the clock would read now without the step. */
  from: number;
  /** What it reads now. */
  to: number;
  /** to - from: positive when the clock jumped forward. */
  deltaMs: number;
}

/** What the bank keeps to tell lockerctl about its clock. */
export interface ClockState {
  synchronized: Synchronized;
  /** The clock when last seen synchronized (this run or an earlier one), if ever. */
  lastSyncedAt: number | null;
  /** Whatever the clock says, the time is at least this (last synchronized + uptime since); null: no idea. */
  lowerBound: number | null;
  lastStep: (ClockStep & { at: number }) | null;
}

export interface BankClockDeps {
  now: () => number;
  /** Monotonic ms (default performance.now). */
  monotonic?: () => number;
  /** Where timesyncd says it has synchronized (a test points it at a temporary directory). */
  timesyncDir?: string;
  stepThresholdMs?: number;
  log: Logger;
}

/** Asked when the clock steps or is first synchronized: the data it adds to that event (in its transaction). */
export type ClockHandler = (tx: LedgerTx, change: { kind: "stepped"; step: ClockStep } | { kind: "synchronized"; uptimeMs: number }) => Record<string, unknown> | undefined;

export class BankClock {
  private readonly mono: () => number;
  private readonly dir: string;
  private readonly threshold: number;
  private readonly log: Logger;
  private readonly startMono: number;
  /** wall - monotonic at the last check: a change beyond the threshold is a step. */
  private offset: number;
  private status: { value: Synchronized; at: number } | undefined;
  private lastSeen: Synchronized;
  /** A time the real time is known to be at or after, and the monotonic instant it was true at. */
  private floor: { wall: number; mono: number } | undefined;
  private lastSyncedAt: number | null = null;
  private lastSyncedWrittenMono = -Infinity;
  private lastStep: ClockState["lastStep"] = null;
  private ledger: Ledger | undefined;
  private readonly handlers: ClockHandler[] = [];
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(private readonly deps: BankClockDeps) {
    this.mono = deps.monotonic ?? (() => performance.now());
    this.dir = deps.timesyncDir ?? TIMESYNC_DIR;
    this.threshold = deps.stepThresholdMs ?? STEP_THRESHOLD_MS;
    this.log = deps.log.child({ module: "clock" });
    this.startMono = this.mono();
    this.offset = deps.now() - this.startMono;
    this.lastSeen = this.synchronized();
  }

  /**
   * The ledger this clock marks and records in: events appended while unsynchronized carry
   * data.clockUnsynced; the last synchronized time kept there is the floor of lowerBound().
   */
  attach(ledger: Ledger): void {
    this.ledger = ledger;
    ledger.clockUnsynced = () => this.unsynced();
    const kept = Number(ledger.meta(META_LAST_SYNCED) ?? NaN);
    const known = [Number.isFinite(kept) ? kept : undefined, newestSynchronizedEvent(ledger)].filter((t): t is number => t !== undefined);
    if (known.length) {
      this.lastSyncedAt = Math.max(...known);
      this.floor = { wall: this.lastSyncedAt, mono: this.startMono };
    }
    if (this.lastSeen === "no") {
      this.log.warn(
        { lastSyncedAt: this.lastSyncedAt === null ? null : new Date(this.lastSyncedAt).toISOString() },
        "clock not synchronized (no NTP yet): events are marked clockUnsynced, older parcels' notices count from this start, commands are judged against the last synchronized time",
      );
    }
  }

  /** Called in the transaction of clock.stepped / clock.synchronized (deadlines rebase there). */
  onChange(handler: ClockHandler): void {
    this.handlers.push(handler);
  }

  /** Writes nothing before this (a start refused for its data directory leaves the ledger as it was). */
  start(): void {
    this.started = true;
    if (this.synchronized() === "yes") this.keepSynced(true);
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.started && this.synchronized() === "yes") this.keepSynced(true);
    this.started = false;
  }

  synchronized(): Synchronized {
    const t = this.mono();
    if (!this.status || t - this.status.at >= STATUS_TTL_MS || t < this.status.at) this.status = { value: timesyncStatus(this.dir), at: t };
    return this.status.value;
  }

  /** timesyncd runs and has not set the clock since boot. */
  unsynced(): boolean {
    return this.synchronized() === "no";
  }

  /** ms since this clock was made (the daemon's start), on the monotonic clock. */
  uptimeMs(): number {
    return this.mono() - this.startMono;
  }

  /**
   * Retention may prune now (not while unsynchronized: a clock years ahead would prune what must be
   * kept). A synchronized time is kept in the ledger first, so the floor of lowerBound() after a
   * restart is never before a prune: a command id pruned there had a window that closed before it.
   */
  mayPrune(): boolean {
    const s = this.synchronized();
    if (s === "yes") this.keepSynced(true);
    return s !== "no";
  }

  /** The real time is at least this: the last synchronized time plus the uptime since; undefined when the bank never knew. */
  lowerBound(): number | undefined {
    return this.floor ? this.floor.wall + (this.mono() - this.floor.mono) : undefined;
  }

  info(sync: Pick<Config["sync"], "clockSkewS" | "maxCommandLifetimeS">, now = this.deps.now()): ClockInfo {
    return { now, synchronized: this.synchronized(), skewToleranceMs: sync.clockSkewS * 1000, maxCommandLifetimeMs: maxCommandLifetimeMs(sync) };
  }

  state(): ClockState {
    const lower = this.lowerBound();
    return { synchronized: this.synchronized(), lastSyncedAt: this.lastSyncedAt, lowerBound: lower ?? null, lastStep: this.lastStep };
  }

  /**
   * Look at the clock: a step (clock.stepped), the first synchronization (clock.synchronized), the
   * hourly note of a synchronized time. Never throws. Returns the step, if there was one.
   */
  check(): ClockStep | undefined {
    let step: ClockStep | undefined;
    try {
      const now = this.deps.now();
      const mono = this.mono();
      const offset = now - mono;
      const delta = offset - this.offset;
      this.offset = offset;
      this.status = undefined;
      const synchronized = this.synchronized();
      if (Math.abs(delta) > this.threshold) {
        step = { from: now - delta, to: now, deltaMs: delta };
        this.lastStep = { ...step, at: now };
        this.log.warn({ ...step, synchronized, from: iso(step.from), to: iso(step.to) }, `clock stepped by ${span(delta)} (${iso(step.from)} → ${iso(now)})`);
        this.record("clock.stepped", { kind: "stepped", step }, { from: step.from, to: now, deltaMs: delta, synchronized });
      }
      if (synchronized === "yes" && this.lastSeen !== "yes") {
        const uptimeMs = this.uptimeMs();
        this.log.info({ was: this.lastSeen, uptimeMs }, "clock synchronized");
        if (this.lastSeen === "no") this.record("clock.synchronized", { kind: "synchronized", uptimeMs }, { uptimeMs });
      }
      this.lastSeen = synchronized;
      if (synchronized === "yes") this.keepSynced(false);
    } catch (e) {
      this.log.error({ err: e }, "clock check failed");
    }
    return step;
  }

  /** The time as synchronized now is the floor of lowerBound() from here on; kept in the ledger hourly (and at stop). */
  private keepSynced(force: boolean): void {
    const now = this.deps.now();
    const mono = this.mono();
    this.lastSyncedAt = now;
    this.floor = { wall: now, mono };
    if (!this.started || !this.ledger?.db.open || (!force && mono - this.lastSyncedWrittenMono < LAST_SYNCED_EVERY_MS)) return;
    try {
      this.ledger.setMetaLazy(META_LAST_SYNCED, String(now));
      this.lastSyncedWrittenMono = mono;
    } catch (e) {
      this.log.warn({ err: e }, "last synchronized time not kept");
    }
  }

  private record(type: "clock.stepped" | "clock.synchronized", change: Parameters<ClockHandler>[1], data: Record<string, unknown>): void {
    const ledger = this.ledger;
    if (!this.started || !ledger?.db.open) return;
    try {
      ledger.transact((tx) => {
        const extra = this.handlers.map((h) => h(tx, change) ?? {});
        tx.event({ type, data: { ...Object.assign({}, ...extra), ...data } });
      });
    } catch (e) {
      this.log.error({ err: e, type }, `${type} not recorded`);
    }
  }
}

/** ts of the newest event (of the last 200) not written on an unsynchronized clock: a time the bank once had right. */
function newestSynchronizedEvent(ledger: Ledger): number | undefined {
  const from = Math.max(1, ledger.headSeq - 199);
  const events = ledger.eventsFrom(from, 200);
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.data.clockUnsynced !== true) return events[i]!.ts;
  return undefined;
}

const iso = (t: number) => (Number.isFinite(t) && Math.abs(t) < 8.64e15 ? new Date(t).toISOString() : String(t));

/** "+5y 12d", "-3h 2m", "+4m 10s". */
export function span(ms: number): string {
  const sign = ms < 0 ? "-" : "+";
  let s = Math.round(Math.abs(ms) / 1000);
  const y = Math.floor(s / 31_536_000);
  s -= y * 31_536_000;
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = y ? [`${y}y`, `${d}d`] : d ? [`${d}d`, `${h}h`] : h ? [`${h}h`, `${m}m`] : [`${m}m`, `${s}s`];
  return sign + parts.join(" ");
}
