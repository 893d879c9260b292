// The actuation queue: the only path from a decision to a lock coil.
//
//   open(c) ─▶ FIFO ─▶ [power budget: ≤ maxConcurrent energized] ─▶ pulse(ms ≤ cap) ─▶ door seen open?
//                                                                        ▲                 │ no, within openVerifyMs
//                                                                        └──── retry ◀─────┘ (retries times)
//
// A pulse is bounded by the config's cap; the queue never energizes more coils at once than the
// power budget allows, whoever asks (keypad, badge, server, technician).
//
// A door that did not open is one of three outcomes, and only the last is the lock's fault:
//   unavailable  no pulse left the controller (the board is known to be down): nothing happened
//   uncertain    a pulse was sent but not acknowledged, or the door cannot be read now: nobody
//                knows whether it opened until the board answers again
//   failed       the coil was energized and the door, which can be read, stayed shut: jammed
// A driver says which of the first two by its error (LockPart.pulse): HardwareUnavailable means
// nothing was sent; any other error means the command may have reached the board.
import { MAX_PULSE_MS } from "../config/schema.js";
import { collectWhenIdle } from "./idle-gc.js";
import type { LockDriver } from "../drivers/types.js";
import { ErrorCode, isLockerError } from "../errors.js";
import type { Logger } from "../log.js";

export interface ActuationOptions {
  pulseMs: number;
  maxConcurrent: number;
  openVerifyMs: number;
  retries: number;
}

export interface OpenResult {
  opened: boolean;
  attempts: number;
  /** The daemon is stopping: the pulse was dropped; record nothing. */
  stopped?: true;
  /** The flow no longer wanted the pulse when its turn came (its door was opened by hand): none fired. */
  skipped?: true;
  /** A driver error on the last attempt (board not answering), if any. */
  error?: unknown;
  /** Not opened, and no pulse was sent: the board was known to be down. Nothing to count, nothing jammed. */
  unavailable?: true;
  /** Not opened, and whether it did is unknown (a pulse unacknowledged, or the door unreadable now). */
  uncertain?: true;
  /** Of the attempts authorized (the first by the caller, retries by beforeRetry), how many energized no coil the controller knows of. */
  unfired?: number;
  /** With `stopped`: attempts whose pulse had begun (0: none ever reached the lock). */
  started?: number;
}

export interface DoorWatch {
  /** Resolves true when the door is seen open before the timeout. */
  waitOpen(compartment: string, timeoutMs: number): { promise: Promise<boolean>; cancel: () => void };
  /** Whether the door can be read now (its sensor's board answers). */
  readable(compartment: string): boolean;
}

export interface ActuationDeps {
  locks: LockDriver;
  doors: DoorWatch;
  log: Logger;
  options: ActuationOptions;
  /**
   * Called before every pulse after the first, so the ledger counts it (wear) and records it. The
   * first pulse is recorded by the caller in the same transaction as the fact that authorized it.
   */
  beforeRetry: (compartment: string, attempt: number, pulseMs: number) => void;
}

interface Slot {
  run: () => void;
}

export class ActuationQueue {
  private active = 0;
  private readonly waiting: Slot[] = [];
  private readonly pulseMs: number;
  private stopped = false;
  private opens = 0;
  /** Each open not yet returned, and whether its pulse has begun. */
  private readonly tracked = new Map<Promise<OpenResult>, { started: boolean }>();
  /** Compartments with an open not yet settled, and how many. */
  private readonly openingNow = new Map<string, number>();

  constructor(private readonly deps: ActuationDeps) {
    this.pulseMs = Math.min(deps.options.pulseMs, MAX_PULSE_MS);
  }

  get pulseLength(): number {
    return this.pulseMs;
  }

  get depth(): number {
    return this.waiting.length + this.active;
  }

  /** Compartments whose door is being opened: queued, pulsing, or watched (a layout change leaves them be). */
  opening(): Set<string> {
    return new Set(this.openingNow.keys());
  }

  /** Opens not yet settled: queued, pulsing, or watching their door. */
  get pending(): number {
    return this.opens;
  }

  /**
   * Pulse a lock and verify the door opens; retry, then give up. Never rejects. `stillWanted` is
   * asked when the pulse's turn comes (it may have waited for the power budget): a flow that ended
   * meanwhile (door opened by hand, parcel in, door shut) must not have its door sprung open.
   */
  open(compartment: string, channel: number, stillWanted: () => boolean = () => true): Promise<OpenResult> {
    const progress = { started: false };
    this.opens++;
    this.openingNow.set(compartment, (this.openingNow.get(compartment) ?? 0) + 1);
    const result = this.attempt(compartment, channel, stillWanted, progress).finally(() => {
      this.opens--;
      this.tracked.delete(result);
      const left = (this.openingNow.get(compartment) ?? 1) - 1;
      if (left > 0) this.openingNow.set(compartment, left);
      else this.openingNow.delete(compartment);
    });
    this.tracked.set(result, progress);
    return result;
  }

  private async attempt(compartment: string, channel: number, stillWanted: () => boolean, progress: { started: boolean }): Promise<OpenResult> {
    const { retries, openVerifyMs } = this.deps.options;
    let error: unknown;
    let sent = 0;
    let fired = 0;
    let made = 0;
    let started = 0;
    for (let attempt = 1; attempt <= retries + 1; attempt++) {
      let watch: ReturnType<DoorWatch["waitOpen"]> | undefined;
      let skipped = false;
      error = undefined;
      if (attempt > 1) {
        if (!stillWanted()) return { opened: true, attempts: attempt - 1, skipped: true };
        try {
          this.deps.beforeRetry(compartment, attempt, this.pulseMs);
        } catch (e) {
          // A retry not on record (the disk refuses the write) is not pulsed: no coil without its authorization.
          this.deps.log.error({ compartment, attempt, err: e }, "retry not recorded: not pulsed");
          break;
        }
      }
      try {
        // The verify window starts with the pulse, not while waiting for the power budget.
        await this.withBudget(() => {
          if (!stillWanted()) {
            skipped = true;
            return Promise.resolve();
          }
          watch = this.deps.doors.waitOpen(compartment, openVerifyMs);
          started++;
          progress.started = true;
          const pulse = this.deps.locks.pulse(channel, this.pulseMs);
          collectWhenIdle(); // the unlock is on its way: garbage now, not in the next decision
          return pulse;
        });
      } catch (e) {
        error = e;
      }
      if (this.stopped) {
        watch?.cancel();
        return { opened: false, attempts: attempt, error, stopped: true, started };
      }
      if (skipped) return { opened: true, attempts: attempt - 1, skipped: true };
      made++;
      if (error === undefined) fired++;
      else if (!isLockerError(error, ErrorCode.HardwareUnavailable)) sent++;
      if (error !== undefined) this.deps.log.warn({ compartment, channel, attempt, err: error }, "lock pulse failed");
      // A pulse the board did not take may still open the door late; the watch decides for sent ones.
      if (watch && (error === undefined || !isLockerError(error, ErrorCode.HardwareUnavailable)) && (await watch.promise)) {
        return { opened: true, attempts: attempt, ...(made > fired ? { unfired: made - fired } : {}) };
      }
      watch?.cancel();
      // The board refused or did not answer: a retry now would meet the same board (its driver
      // has already retried); the outcome is not the lock's fault.
      if (error !== undefined) break;
      this.deps.log.warn({ compartment, attempt }, "door not seen open after pulse");
    }
    const attempts = fired + sent;
    const unfired = made - fired;
    if (fired + sent === 0) return { opened: false, attempts: 0, error, unavailable: true, unfired };
    if (fired === 0 || !this.deps.doors.readable(compartment)) return { opened: false, attempts, error, uncertain: true, unfired };
    return { opened: false, attempts, error, unfired };
  }

  /**
   * Stop taking work; queued pulses are dropped (the caller's open() resolves stopped, started 0).
   * Resolves once every open that never reached a lock has returned to its caller, and the
   * caller's own handlers (registered first) have run: they can still record what did not happen.
   */
  stop(): Promise<void> {
    this.stopped = true;
    const dropped = [...this.tracked].filter(([, p]) => !p.started).map(([r]) => r);
    for (const s of this.waiting.splice(0)) s.run();
    return Promise.allSettled(dropped).then(() => undefined);
  }

  private withBudget<T>(fn: () => Promise<T>): Promise<T> {
    const start = (): Promise<T> => {
      if (this.stopped) return Promise.reject(new Error("actuation stopped"));
      this.active++;
      return fn().finally(() => {
        this.active--;
        this.waiting.shift()?.run();
      });
    };
    if (this.active < this.deps.options.maxConcurrent) return start();
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ run: () => start().then(resolve, reject) });
    });
  }
}
