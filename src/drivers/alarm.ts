// One timer for many wake-ups: the entries run in time order from a single Node timer armed at the
// earliest of them, and entries due within a millisecond of each other run in one wake-up.
//
// Why not a Node timer each: Node keeps one libuv timer armed at its earliest timer, and clearing
// that timer does not re-arm it later. A timeout that is cleared before it fires (a board's reply
// deadline, cleared by the answer) still wakes the process at its old time, finds nothing due and
// goes back to sleep: on an idle bank that was one wake-up in three. With the wake-ups in one place,
// the bus can put a deadline where the process wakes anyway (nextAt) and spend none on it.
import type { Scheduler } from "./run-at.js";

const node: Pick<Scheduler, "now" | "setTimeout" | "clearTimeout"> = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

interface Entry {
  at: number;
  fn: () => void;
  live: boolean;
}

/** Entries due this close to the wake-up run in it (Node's timers count the loop's whole milliseconds). */
export const ALARM_COALESCE_MS = 1;

export class Alarm {
  /** Sorted by `at`; equal times in the order they were added. */
  private readonly entries: Entry[] = [];
  private timer: unknown = null;
  private armedAt = Infinity;
  /** Wake-ups of the timer, and those that found nothing due (a cancelled entry's, or early). */
  readonly counts = { wakeups: 0, idle: 0 };

  constructor(private readonly s: Pick<Scheduler, "now" | "setTimeout" | "clearTimeout"> = node) {}

  /**
   * Run `fn` once at `at` (the scheduler's clock, performance.now() by default), from the event
   * loop, never inside this call; it runs up to ALARM_COALESCE_MS early (with an entry due then) and
   * usually a millisecond or two late. Returns a cancel function.
   */
  at(at: number, fn: () => void): () => void {
    const e: Entry = { at, fn, live: true };
    let i = this.entries.length;
    while (i > 0 && this.entries[i - 1]!.at > at) i--;
    this.entries.splice(i, 0, e);
    if (at < this.armedAt) this.arm();
    return () => {
      if (!e.live) return;
      e.live = false;
      const i = this.entries.indexOf(e);
      if (i >= 0) this.entries.splice(i, 1); // else it is due in the wake-up under way

      // The timer stays armed while anything is left: re-arming later would not spare the wake-up.
      if (this.entries.length === 0) this.disarm();
    };
  }

  /** The time of the earliest entry due at or after `t`; undefined when there is none. */
  nextAt(t: number): number | undefined {
    return this.entries.find((e) => e.at >= t)?.at;
  }

  /** How many entries wait. */
  get size(): number {
    return this.entries.length;
  }

  private disarm(): void {
    if (this.timer !== null) this.s.clearTimeout(this.timer);
    this.timer = null;
    this.armedAt = Infinity;
  }

  private arm(): void {
    this.disarm();
    const head = this.entries[0];
    if (!head) return;
    this.armedAt = head.at;
    // One millisecond more than the wait: a Node timer counts from the loop's cached clock, which
    // may stand a fraction of a millisecond (more after a long callback) behind the real one, so a
    // timer of exactly the wait can fire before its entry is due and wake the process for nothing.
    this.timer = this.s.setTimeout(() => this.fire(), Math.max(1, Math.ceil(head.at - this.s.now()) + 1));
  }

  private fire(): void {
    this.timer = null;
    this.armedAt = Infinity;
    const until = this.s.now() + ALARM_COALESCE_MS;
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.at <= until) n++;
    // Those due now; one added by them runs in a later wake-up, never in this one.
    const due = this.entries.splice(0, n);
    this.counts.wakeups++;
    if (n === 0) this.counts.idle++;
    let failure: { e: unknown } | null = null;
    for (const e of due) {
      if (!e.live) continue; // cancelled by one before it
      e.live = false;
      try {
        e.fn();
      } catch (err) {
        failure ??= { e: err };
      }
    }
    if (this.timer === null) this.arm();
    if (failure) throw failure.e;
  }
}
