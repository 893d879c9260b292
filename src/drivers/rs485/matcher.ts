// Request/response matching: a caller waits for the first frame that satisfies its predicate
// (board address + reply command), or a timeout. Frames nobody waits for are the caller's
// "unsolicited" frames (late replies, a board's own reports). Same idea as zigbee-herdsman's waitress.
import { ErrorCode, LockerError } from "../../errors.js";

interface Waiter<F> {
  match: (frame: F) => boolean;
  resolve: (frame: F) => void;
  reject: (e: LockerError) => void;
  timer: NodeJS.Timeout;
}

export class ReplyMatcher<F> {
  private readonly waiters = new Set<Waiter<F>>();

  /**
   * Resolves with the first matching frame; rejects with HardwareTimeout after `timeoutMs`, or with
   * the signal's reason when it is aborted (the request could not be sent).
   */
  wait(match: (frame: F) => boolean, timeoutMs: number, what: string, signal?: AbortSignal): Promise<F> {
    return new Promise<F>((resolve, reject) => {
      const waiter: Waiter<F> = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new LockerError(ErrorCode.HardwareTimeout, `no answer from ${what} within ${timeoutMs} ms`, { what, timeoutMs }));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
      signal?.addEventListener("abort", () => {
        if (!this.waiters.delete(waiter)) return;
        clearTimeout(waiter.timer);
        reject(signal.reason);
      });
    });
  }

  /** Hand a frame to the first waiter it matches. False when nobody wanted it. */
  offer(frame: F): boolean {
    for (const w of this.waiters) {
      if (!w.match(frame)) continue;
      clearTimeout(w.timer);
      this.waiters.delete(w);
      w.resolve(frame);
      return true;
    }
    return false;
  }

  /** Fail every waiter now (port closed, stopping). */
  cancelAll(e: LockerError): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiters.clear();
  }

  get size(): number {
    return this.waiters.size;
  }
}
