import { describe, expect, it } from "vitest";
import {
  lockoutRemaining,
  NO_LOCKOUT,
  liveFailures,
  recordFailure,
  type FailureOutcome,
  type LockoutPolicy,
  type LockoutState,
} from "../../../src/domain/lockout.js";

const POLICY: LockoutPolicy = {
  threshold: 5,
  baseDelayMs: 30_000,
  maxDelayMs: 900_000,
  alarmThreshold: 20,
  alarmWindowMs: 3_600_000,
  decayMs: 300_000,
};
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const SEC = 1000;

/** n failures, one second apart from `start`; every outcome. */
function fail(n: number, state: LockoutState = NO_LOCKOUT, start = T0, step = SEC): { state: LockoutState; outcomes: FailureOutcome[]; now: number } {
  const outcomes: FailureOutcome[] = [];
  let now = start;
  for (let i = 0; i < n; i++) {
    now = start + i * step;
    const out = recordFailure(state, now, POLICY);
    outcomes.push(out);
    state = out.state;
  }
  return { state, outcomes, now };
}

describe("lockout", () => {
  it("does not lock on the first threshold-1 failures", () => {
    const { state, outcomes, now } = fail(4);
    expect(outcomes.map((o) => o.lockedForMs)).toEqual([0, 0, 0, 0]);
    expect(state.failures).toBe(4);
    expect(state.lockedUntil).toBe(0);
    expect(lockoutRemaining(state, now, POLICY)).toBe(0);
  });

  it("locks for baseDelayMs on the threshold-th failure", () => {
    const { state, outcomes, now } = fail(5);
    expect(outcomes[4]!.lockedForMs).toBe(POLICY.baseDelayMs);
    expect(state.lockedUntil).toBe(now + POLICY.baseDelayMs);
    expect(lockoutRemaining(state, now, POLICY)).toBe(POLICY.baseDelayMs);
  });

  it("doubles with each further failure and stops at maxDelayMs", () => {
    const { outcomes } = fail(12);
    expect(outcomes.slice(4).map((o) => o.lockedForMs)).toEqual([
      30_000, 60_000, 120_000, 240_000, 480_000, 900_000 /* 960 s capped */, 900_000, 900_000,
    ]);
  });

  it("stays capped (no overflow) after very many failures", () => {
    const { outcomes } = fail(200);
    const last = outcomes.at(-1)!;
    expect(last.lockedForMs).toBe(POLICY.maxDelayMs);
    expect(Number.isFinite(last.state.lockedUntil)).toBe(true);
  });

  it("lockoutRemaining counts down with the clock and reaches 0", () => {
    const { state, now } = fail(5);
    expect(lockoutRemaining(state, now + 10 * SEC, POLICY)).toBe(20 * SEC);
    expect(lockoutRemaining(state, now + 29_999, POLICY)).toBe(1);
    expect(lockoutRemaining(state, now + 30 * SEC, POLICY)).toBe(0);
    expect(lockoutRemaining(state, now + 3_600 * SEC, POLICY)).toBe(0);
    expect(lockoutRemaining(NO_LOCKOUT, T0, POLICY)).toBe(0);
  });

  it("a clock that jumped back never makes anyone wait longer than maxDelayMs", () => {
    const { state, now } = fail(5); // locked for 30 s
    const dayBack = now - 86_400_000;
    expect(lockoutRemaining(state, dayBack, POLICY)).toBe(POLICY.maxDelayMs);
    expect(lockoutRemaining(state, now - 1, POLICY)).toBe(POLICY.baseDelayMs + 1);
    // A lockedUntil persisted far in the future (clock jumped forward, then fixed) is also capped.
    expect(lockoutRemaining({ ...state, lockedUntil: now + 30 * 86_400_000 }, now, POLICY)).toBe(POLICY.maxDelayMs);
  });

  it("failures decay with time only: one forgiven per decayMs, counted from the first of the run; nothing else resets them", () => {
    const { state, now } = fail(7); // T0 .. T0 + 6 s
    expect(liveFailures(state, now, POLICY)).toBe(7);
    expect(liveFailures(state, T0 + POLICY.decayMs - 1, POLICY)).toBe(7);
    expect(liveFailures(state, T0 + POLICY.decayMs, POLICY)).toBe(6);
    expect(liveFailures(state, T0 + 7 * POLICY.decayMs, POLICY)).toBe(0);
    expect(liveFailures(state, now - 3_600_000, POLICY)).toBe(7); // a clock that jumped back forgives nothing
    // Long quiet: the next lock needs threshold failures again.
    const again = fail(5, state, now + 7 * POLICY.decayMs + 31 * SEC);
    expect(again.outcomes.map((o) => o.lockedForMs)).toEqual([0, 0, 0, 0, POLICY.baseDelayMs]);
    // Time served counts: a failure every 4 minutes against a 5-minute decay is forgiven at 5-minute steps, not never.
    let s = NO_LOCKOUT;
    for (let i = 0; i < 20; i++) s = recordFailure(s, T0 + i * 240_000, POLICY).state;
    // 20 failures over 76 min; 15 periods of 5 min have passed since the first: 5 still counted, not 20.
    expect(liveFailures(s, T0 + 19 * 240_000, POLICY)).toBeLessThanOrEqual(6);
    // Partly decayed: fewer are needed.
    const soon = fail(2, state, now + 3 * POLICY.decayMs + 31 * SEC);
    expect(soon.outcomes.map((o) => o.lockedForMs)).toEqual([POLICY.baseDelayMs, POLICY.baseDelayMs * 2]);
  });

  it("does not mutate the state it is given", () => {
    const before = { failures: 4, lockedUntil: 0, windowStart: T0, windowFailures: 4, lastFailureAt: T0 };
    const copy = { ...before };
    recordFailure(before, T0 + SEC, POLICY);
    expect(before).toEqual(copy);
  });

  describe("brute-force alarm", () => {
    it("fires exactly once, when the window count reaches alarmThreshold", () => {
      const { outcomes, state } = fail(45);
      const alarms = outcomes.flatMap((o, i) => (o.alarm ? [i + 1] : []));
      expect(alarms).toEqual([POLICY.alarmThreshold]);
      expect(state.windowFailures).toBe(45);
      expect(state.windowStart).toBe(T0);
    });

    it("counts across a pause within the window (nothing resets it)", () => {
      const { state } = fail(15);
      const { outcomes } = fail(10, state, T0 + 20 * SEC);
      expect(outcomes.map((o) => o.alarm).indexOf(true)).toBe(4); // the 20th bad code in the window
    });

    it("the window resets after alarmWindowMs, and the alarm can fire again in the next one", () => {
      const first = fail(19); // 19 in [T0, T0+18 s]
      expect(first.outcomes.some((o) => o.alarm)).toBe(false);

      // Still inside the window 1 ms before it ends: this is the 20th.
      const inside = recordFailure(first.state, T0 + POLICY.alarmWindowMs - 1, POLICY);
      expect(inside.state.windowFailures).toBe(20);
      expect(inside.alarm).toBe(true);

      // At windowStart + alarmWindowMs a new window starts, counting from 1.
      const next = recordFailure(inside.state, T0 + POLICY.alarmWindowMs, POLICY);
      expect(next.state.windowStart).toBe(T0 + POLICY.alarmWindowMs);
      expect(next.state.windowFailures).toBe(1);
      expect(next.alarm).toBe(false);
      // ...while the lockout counter carries on (it decays only with time since the last failure).
      expect(next.state.failures).toBe(liveFailures(inside.state, T0 + POLICY.alarmWindowMs, POLICY) + 1);

      const second = fail(19, next.state, T0 + POLICY.alarmWindowMs + SEC);
      expect(second.outcomes.map((o) => o.alarm).indexOf(true)).toBe(18); // the 20th of the new window
      expect(second.outcomes.filter((o) => o.alarm)).toHaveLength(1);
    });

    it("30 failures spread evenly over two windows (15 in each) raise no alarm", () => {
      const { outcomes } = fail(30, NO_LOCKOUT, T0, POLICY.alarmWindowMs / 15); // 15 per window
      expect(outcomes.some((o) => o.alarm)).toBe(false);
    });

    it("a clock that jumped back before the window start opens a new window", () => {
      const { state } = fail(10);
      const out = recordFailure(state, T0 - 60 * SEC, POLICY);
      expect(out.state.windowStart).toBe(T0 - 60 * SEC);
      expect(out.state.windowFailures).toBe(1);
    });
  });
});
