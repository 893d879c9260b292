// The fuzz targets (scripts/fuzz/) under vitest: its fake timers as their clock (setImmediate stays
// real, so sockets flow), the CI seed, and a report as an assertion message.
import { afterEach, beforeEach, vi } from "vitest";
import { FUZZ_T0, type FuzzClock } from "../../scripts/fuzz/clock.js";
import type { FuzzReport } from "../../scripts/fuzz/report.js";

export function fakeClock(): FuzzClock {
  beforeEach(() => {
    vi.useFakeTimers({ now: FUZZ_T0, toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  return { advance: async (ms) => void (await vi.advanceTimersByTimeAsync(ms)) };
}

/** The seed of a CI run: FUZZ_SEED to replay one, else fixed (CI stays deterministic). */
export const SEED = Number(process.env.FUZZ_SEED ?? 20261125);

/** A report as the assertion message shows it: the findings with their repro, then the counters. */
export function summary(r: FuzzReport): string {
  return JSON.stringify({ target: r.target, seed: r.seed, inputs: r.inputs, crashes: r.crashes, unlocks: r.unlocks, findings: r.findings, stats: r.stats }, null, 1);
}
