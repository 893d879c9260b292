// Request/response matching: a caller waits for the first frame that satisfies its predicate
// (board address + reply command), or a timeout. Frames nobody waits for are the caller's
// "unsolicited" frames (late replies, a board's own reports). Same idea as zigbee-herdsman's waitress.
import { ErrorCode, LockerError } from "../../errors.js";

interface Waiter<F> {
  match: (frame: F) => boolean;
  resolve: (frame: F) => void;
  reject: (e: LockerError) => void;
  cancel: () => void;
}

/**
 * Starts a waiter's timeout: calls `fire` when it is over, with how long was waited when that is
 * not `timeoutMs` (the bus may let a poll's wait run on to its next wake-up); returns a cancel.
 */
/**
 * Fails a waiter whose request could not be sent, with the reason given. An AbortController would
 * do, at the cost of an EventTarget per exchange (a tenth of the idle bus's JavaScript time).
 */
export class Unsent {
  private listener: ((reason: unknown) => void) | null = null;
  abort(reason: unknown): void {
    const f = this.listener;
    this.listener = null;
    f?.(reason);
  }
  /** The waiter's hook; one per Unsent. */
  onAbort(f: (reason: unknown) => void): void {
    this.listener = f;
  }
}

export type StartTimeout = (fire: (waitedMs?: number) => void) => () => void;

export class ReplyMatcher<F> {
  private readonly waiters = new Set<Waiter<F>>();

  /**
   * Resolves with the first matching frame; rejects with HardwareTimeout after `timeoutMs` (or when
   * `start`'s timeout fires), or with the reason `unsent` is aborted with (the request could not
   * be sent).
   */
  wait(match: (frame: F) => boolean, timeoutMs: number, what: string, unsent?: Unsent, start?: StartTimeout): Promise<F> {
    return new Promise<F>((resolve, reject) => {
      const fire = (waitedMs = timeoutMs) => {
        if (!this.waiters.delete(waiter)) return;
        reject(new LockerError(ErrorCode.HardwareTimeout, `no answer from ${what} within ${waitedMs} ms`, { what, timeoutMs: waitedMs }));
      };
      const waiter: Waiter<F> = { match, resolve, reject, cancel: start ? start(fire) : timeoutAfter(timeoutMs, fire) };
      this.waiters.add(waiter);
      unsent?.onAbort((reason) => {
        if (!this.waiters.delete(waiter)) return;
        waiter.cancel();
        reject(reason);
      });
    });
  }

  /** Hand a frame to the first waiter it matches. False when nobody wanted it. */
  offer(frame: F): boolean {
    for (const w of this.waiters) {
      if (!w.match(frame)) continue;
      w.cancel();
      this.waiters.delete(w);
      w.resolve(frame);
      return true;
    }
    return false;
  }

  /** Fail every waiter now (port closed, stopping). */
  cancelAll(e: LockerError): void {
    for (const w of this.waiters) {
      w.cancel();
      w.reject(e);
    }
    this.waiters.clear();
  }

  get size(): number {
    return this.waiters.size;
  }
}

function timeoutAfter(ms: number, fire: () => void): () => void {
  const timer = setTimeout(fire, ms);
  return () => clearTimeout(timer);
}
