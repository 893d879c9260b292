// Sends each parcel's notices when they fall due (reminder, escalation, expiry) as ledger events,
// which the server turns into messages. Wakes on a monotonic timer at the next due time and at
// least every CHECK_MS, and compares due times with the wall clock then: a clock that jumps
// forward sends what became overdue once (dueNow supersedes the earlier stages), a clock that
// jumps back re-sends nothing (sent notices are marked in the ledger, with their event).
//
// Never early because of the clock (a Pi has no RTC: sync/clock.ts). An expiry stops the code from
// opening, so a notice may come late, never early:
//   - a parcel deposited in this run has its due times on this run's clock, moved with every step
//     (clock.stepped, data.rebased): its notices fall due after the time that really passed;
//   - while the clock is not synchronized (timesyncd: no), a parcel deposited before this start
//     counts from this start (its deposit was at the latest then: uptime is the least it has
//     waited), whatever the wall clock says; late by at most the time it had waited before;
//   - at the first synchronization, such parcels whose deposit was recorded on an unsynchronized
//     clock (data.clockUnsynced) get due times from that same estimate (clock.synchronized,
//     data.restarted), once each (ledger meta clock.rebasedThrough).
import { dueNow } from "../domain/deadlines.js";
import type { EventType } from "../domain/events.js";
import type { Deadline, Ledger, LedgerTx, Parcel } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { ClockHandler } from "../sync/clock.js";

const CHECK_MS = 60_000;
const EVENT: Record<Deadline["kind"], EventType> = { reminder: "parcel.reminder", escalation: "parcel.escalated", expiry: "parcel.expired" };
/** Ledger meta: deposits recorded on an unsynchronized clock up to this seq have had their due times restarted. */
export const META_REBASED_THROUGH = "clock.rebasedThrough";
/** Events that set a parcel's depositedAt. */
const DEPOSITS = new Set<string>(["parcel.deposited", "parcel.awaiting_recipient", "parcel.dropped_off"]);
const GONE = new Set<string>(["parcel.picked_up", "parcel.removed", "parcel.collected", "parcel.cancelled"]);

/** What the scheduler needs of the bank's clock (BankClock). */
export interface DeadlineClock {
  /** Look for a step now (a step moves this run's due times before they are compared). */
  check(): unknown;
  unsynced(): boolean;
  uptimeMs(): number;
  onChange(handler: ClockHandler): void;
}

export class DeadlineScheduler {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly log: Logger;
  /** Parcels whose depositedAt was recorded in this run: on this run's (step-corrected) clock. */
  private readonly thisRun = new Set<string>();
  private unsubscribe: (() => void) | undefined;
  private heldBack = 0;
  private shiftStmt: ReturnType<Ledger["db"]["prepare"]> | undefined;

  constructor(private readonly deps: { ledger: Ledger; now: () => number; log: Logger; clock?: DeadlineClock | undefined }) {
    this.log = deps.log.child({ module: "deadlines" });
    deps.clock?.onChange((tx, change) => {
      const data = change.kind === "stepped" ? this.rebase(tx, change.step.deltaMs) : this.restartUnsynced(tx, change.uptimeMs);
      setImmediate(() => {
        if (!this.stopped) this.run();
      });
      return data;
    });
  }

  start(): void {
    this.stopped = false;
    this.unsubscribe ??= this.deps.ledger.onCommit((events) => {
      for (const e of events) {
        if (!e.parcel) continue;
        if (DEPOSITS.has(e.type)) this.thisRun.add(e.parcel);
        else if (GONE.has(e.type)) this.thisRun.delete(e.parcel);
      }
    });
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Send what is due now; then sleep until the next due time (at most CHECK_MS). Returns how many were sent. */
  run(): number {
    clearTimeout(this.timer);
    let sent = 0;
    try {
      sent = this.sendDue();
    } catch (e) {
      this.log.error({ err: e }, "deadline run failed; retrying on the next check");
    }
    if (!this.stopped) {
      const next = this.deps.clock?.unsynced() ? undefined : this.deps.ledger.nextDeadline();
      const wait = next === undefined ? CHECK_MS : Math.min(Math.max(next - this.deps.now(), 1000), CHECK_MS);
      this.timer = setTimeout(() => this.run(), wait);
      this.timer.unref();
    }
    return sent;
  }

  /**
   * The time a parcel's due times are compared with: the wall clock, except while it is not
   * synchronized for a parcel from before this start: its deposit time plus this run's uptime.
   */
  private clockFor(parcel: Parcel | undefined, now: number, unsynced: boolean): number {
    if (!unsynced || !parcel || this.thisRun.has(parcel.id)) return now;
    return (parcel.depositedAt ?? parcel.createdAt) + (this.deps.clock?.uptimeMs() ?? 0);
  }

  private sendDue(): number {
    const { ledger } = this.deps;
    this.deps.clock?.check();
    const now = this.deps.now();
    const unsynced = this.deps.clock?.unsynced() ?? false;
    const byParcel = new Map<string, Deadline[]>();
    // Unsynchronized, "due" is per parcel (clockFor): every unsent notice is looked at (one row per stage of the parcels in the bank).
    for (const d of ledger.dueDeadlines(unsynced ? Number.MAX_SAFE_INTEGER : now)) byParcel.set(d.parcelId, [...(byParcel.get(d.parcelId) ?? []), d]);
    let sent = 0;
    let heldBack = 0;
    for (const [parcelId, unsent] of byParcel) {
      const parcel = ledger.parcel(parcelId);
      const at = this.clockFor(parcel, now, unsynced);
      const { send, superseded } = dueNow(unsent, at);
      if (!send) {
        if (at !== now && unsent.some((d) => d.dueAt <= now)) heldBack++;
        continue;
      }
      ledger.transact((tx) => {
        for (const s of superseded) tx.closeDeadline(parcelId, s.stage, "superseded", now);
        if (!parcel || parcel.status === "picked_up" || parcel.status === "removed" || parcel.status === "cancelled") {
          tx.voidDeadlines(parcelId, now);
          return;
        }
        tx.closeDeadline(parcelId, send.stage, "sent", now);
        if (send.kind === "expiry") tx.updateParcel(parcelId, { expiredAt: now });
        tx.event({
          type: EVENT[send.kind],
          compartment: parcel.compartmentId,
          parcel: parcelId,
          actor: parcel.recipientId,
          data: { stage: send.stage, dueAt: send.dueAt, lateMs: at - send.dueAt, ...(superseded.length ? { superseded: superseded.map((s) => s.kind) } : {}) },
        });
        sent++;
      });
    }
    // On change only: not once a minute while it lasts.
    if (heldBack !== this.heldBack) {
      if (heldBack) this.log.warn({ parcels: heldBack }, "clock not synchronized: notices the wall clock says are due wait, counted from this start, for parcels deposited before it");
      else if (this.heldBack) this.log.info("no notice held back by the clock any more");
      this.heldBack = heldBack;
    }
    return sent;
  }

  /** The clock stepped by deltaMs: this run's deposits move with it (their time waited stays what it was). */
  private rebase(tx: LedgerTx, deltaMs: number): Record<string, unknown> | undefined {
    const rebased: string[] = [];
    for (const id of this.thisRun) if (this.shift(tx, id, deltaMs)) rebased.push(id);
    return rebased.length ? { rebased } : undefined;
  }

  /**
   * The clock is synchronized for the first time since the start: parcels deposited before it on an
   * unsynchronized clock count from the start (now - uptime), as they did while it was not.
   */
  private restartUnsynced(tx: LedgerTx, uptimeMs: number): Record<string, unknown> | undefined {
    const { ledger } = this.deps;
    const through = Number(ledger.meta(META_REBASED_THROUGH) ?? 0);
    const startedAt = this.deps.now() - uptimeMs;
    const restarted: string[] = [];
    const parcels = new Set(ledger.dueDeadlines(Number.MAX_SAFE_INTEGER).map((d) => d.parcelId));
    for (const id of parcels) {
      if (this.thisRun.has(id)) continue;
      const p = ledger.parcel(id);
      if (!p || p.depositedAt === null) continue;
      const deposit = ledger.eventsOfParcel(id).findLast((e) => DEPOSITS.has(e.type));
      if (!deposit || deposit.seq <= through || deposit.data.clockUnsynced !== true) continue;
      if (this.shift(tx, id, startedAt - p.depositedAt)) restarted.push(id);
    }
    tx.setMeta(META_REBASED_THROUGH, String(ledger.headSeq));
    return restarted.length ? { restarted } : undefined;
  }

  /** A parcel's unsent due times and its deposit time, moved by deltaMs. */
  private shift(tx: LedgerTx, id: string, deltaMs: number): boolean {
    const p = this.deps.ledger.parcel(id);
    if (!p || p.depositedAt === null || deltaMs === 0) return false;
    this.shiftDue.run(deltaMs, id);
    tx.updateParcel(id, { depositedAt: p.depositedAt + deltaMs });
    return true;
  }

  private get shiftDue() {
    return (this.shiftStmt ??= this.deps.ledger.db.prepare("UPDATE deadlines SET due_at = due_at + ? WHERE parcel_id = ? AND sent_at IS NULL"));
  }
}
