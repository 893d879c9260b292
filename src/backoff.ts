// Capped exponential backoff with full jitter: the wait before retry n (0-based) is a random time
// in [base/2, min(cap, base * 2^n)]. Used for board faults, readers that went away and the server
// link, so a fleet of banks that lost the same broker does not reconnect in lockstep.

export interface BackoffOptions {
  /** First delay, ms. */
  baseMs: number;
  /** Longest delay, ms. */
  capMs: number;
  /** 0..1 random source (tests pass a fixed one). */
  random?: () => number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.min(attempt, 30));
  const floor = Math.min(ceiling, opts.baseMs / 2);
  const r = (opts.random ?? Math.random)();
  return Math.round(floor + r * (ceiling - floor));
}

/** Counts failures and says how long to wait before the next try; `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}
  next(): number {
    return backoffDelay(this.attempt++, this.opts);
  }
  reset(): void {
    this.attempt = 0;
  }
  get failures(): number {
    return this.attempt;
  }
}
