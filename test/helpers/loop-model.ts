// A model of Node's event loop on a simulated clock, for code that takes a Scheduler (run-at.ts,
// alarm.ts). A timer of n ms fires when the loop's cached whole-millisecond clock has moved n ms on,
// which by the real clock is anywhere from just after the call to n + 1 ms later (`early` says how
// far before its nominal time each one fires, 0..1 ms). Each event-loop turn (setImmediate) takes
// TURN_MS. `wakes` counts the timers that fired.
import type { Scheduler } from "../../src/drivers/run-at.js";

export const TURN_MS = 0.02;

/** A loop on a simulated clock; `early` says how far before its nominal time each timer fires (0..1 ms). */
export function loopModel(early: () => number) {
  let now = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void; kind: "timer" | "turn" | "event" }>();
  let wakes = 0;
  const log: string[] = [];
  const s: Scheduler = {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++seq;
      // The loop's clock is whole milliseconds: the timer is due at floor(now) + ms, minus how early it fires.
      pending.set(id, { at: Math.max(now, Math.floor(now) + ms + 1 - early()), fn, kind: "timer" });
      log.push(`timer ${ms}`);
      return id;
    },
    clearTimeout: (h) => void pending.delete(h as number),
    setImmediate(fn) {
      const id = ++seq;
      pending.set(id, { at: now + TURN_MS, fn, kind: "turn" });
      return id;
    },
    clearImmediate: (h) => void pending.delete(h as number),
  };
  return {
    s,
    log,
    get now() {
      return now;
    },
    /** Runs the loop until nothing is pending. */
    run(): void {
      for (let guard = 0; pending.size && guard < 100_000; guard++) {
        const [id, next] = [...pending].sort((a, b) => a[1].at - b[1].at)[0]!;
        pending.delete(id);
        now = Math.max(now, next.at);
        if (next.kind === "timer") wakes++;
        next.fn();
      }
    },
    turns: () => [...pending.values()].filter((p) => p.kind === "turn").length,
    /** Timers that have fired: the process's wake-ups. */
    get wakes() {
      return wakes;
    },
    /** Something from outside the loop's timers (a byte arriving) at `at`: not a timer, not counted. */
    event(at: number, fn: () => void): void {
      pending.set(++seq, { at, fn, kind: "event" });
    },
  };
}

