// Sends each parcel's notices when they fall due (reminder, escalation, expiry) as ledger events,
// which the server turns into messages. Wakes on a monotonic timer at the next due time and at
// least every CHECK_MS, and compares due times with the wall clock then: a clock that jumps
// forward sends what became overdue once (dueNow supersedes the earlier stages), a clock that
// jumps back re-sends nothing (sent notices are marked in the ledger, with their event).
import { dueNow } from "../domain/deadlines.js";
import type { EventType } from "../domain/events.js";
import type { Deadline, Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";

const CHECK_MS = 60_000;
const EVENT: Record<Deadline["kind"], EventType> = { reminder: "parcel.reminder", escalation: "parcel.escalated", expiry: "parcel.expired" };

export class DeadlineScheduler {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly deps: { ledger: Ledger; now: () => number; log: Logger }) {
    this.log = deps.log.child({ module: "deadlines" });
  }

  start(): void {
    this.stopped = false;
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
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
      const next = this.deps.ledger.nextDeadline();
      const wait = next === undefined ? CHECK_MS : Math.min(Math.max(next - this.deps.now(), 1000), CHECK_MS);
      this.timer = setTimeout(() => this.run(), wait);
      this.timer.unref();
    }
    return sent;
  }

  private sendDue(): number {
    const { ledger } = this.deps;
    const now = this.deps.now();
    const byParcel = new Map<string, Deadline[]>();
    for (const d of ledger.dueDeadlines(now)) byParcel.set(d.parcelId, [...(byParcel.get(d.parcelId) ?? []), d]);
    let sent = 0;
    for (const [parcelId, unsent] of byParcel) {
      const { send, superseded } = dueNow(unsent, now);
      if (!send) continue;
      const parcel = ledger.parcel(parcelId);
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
          data: { stage: send.stage, dueAt: send.dueAt, lateMs: now - send.dueAt, ...(superseded.length ? { superseded: superseded.map((s) => s.kind) } : {}) },
        });
        sent++;
      });
    }
    return sent;
  }
}
