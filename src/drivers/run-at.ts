// Running something at a point in time to within a fraction of a millisecond, without blocking.
//
// Node's timers count whole milliseconds of the event loop's cached clock: setTimeout(fn, 1) runs
// anywhere from a few microseconds to 2 ms later by performance.now(), so a wait of "1 ms" is either
// cut short or doubled. runAt() takes a timer for all but the last stretch of the wait (`fineMs`),
// then finishes it with event-loop turns (setImmediate), each of which still serves I/O. It never runs
// `fn` before `at`. The turns cost CPU for at most `fineMs` plus the timer's slack, so callers spend
// them only where a millisecond counts (an unlock waiting out the bus's turnaround).

export interface Scheduler {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setImmediate(fn: () => void): unknown;
  clearImmediate(handle: unknown): void;
}

const node: Scheduler = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setImmediate: (fn) => setImmediate(fn),
  clearImmediate: (h) => clearImmediate(h as NodeJS.Immediate),
};

/** How far a timer may run early (the loop's clock is cached and whole milliseconds). */
const TIMER_SLACK_MS = 1;

/**
 * Run `fn` once at or after `at` (the scheduler's clock, performance.now() by default), from the
 * event loop (never inside this call, even when `at` has passed); returns a cancel function. With `fineMs` 0 a timer alone decides (re-armed while early: late by up to a
 * couple of milliseconds, no spinning); with `fineMs` > 0 the last `fineMs` of the wait are event-loop
 * turns, so `fn` runs within a turn of `at`.
 */
export function runAt(at: number, fn: () => void, fineMs = 0, s: Scheduler = node): () => void {
  let timer: unknown = null;
  let turn: unknown = null;
  let done = false;
  const step = (first: boolean): void => {
    timer = turn = null;
    if (done) return;
    const left = at - s.now();
    if (left <= 0 && !first) {
      done = true;
      fn();
    } else if (left <= 0 || (fineMs > 0 && left <= fineMs + TIMER_SLACK_MS)) {
      // Never inside the call: the caller keeps the cancel function before `fn` can run.
      turn = s.setImmediate(() => step(false));
    } else {
      // Coarse: wake before the fine stretch begins (or at `at` itself when there is none).
      timer = s.setTimeout(() => step(false), Math.max(1, Math.ceil(fineMs > 0 ? left - fineMs - TIMER_SLACK_MS : left)));
    }
  };
  step(true);
  return () => {
    done = true;
    if (timer !== null) s.clearTimeout(timer);
    if (turn !== null) s.clearImmediate(turn);
    timer = turn = null;
  };
}
