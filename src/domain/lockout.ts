// Per-terminal lockout after repeated bad codes, PINs and badges. Pure: time is passed in
// (wall-clock ms, since the state is persisted across restarts). Failures decay with time only,
// one forgiven per decayMs: a valid credential resets nothing, so an attacker who holds one PIN
// cannot interleave it to reset the counter.
export interface LockoutPolicy {
  threshold: number;
  baseDelayMs: number;
  maxDelayMs: number;
  alarmThreshold: number;
  alarmWindowMs: number;
  /** One failure is forgiven per this much time without one. */
  decayMs: number;
}

export interface LockoutState {
  /** Bad codes since the last good one. */
  failures: number;
  lockedUntil: number;
  windowStart: number;
  windowFailures: number;
  /**
   * The decay's clock: one failure is forgiven per decayMs after it. It moves on by whole periods
   * as failures are forgiven, so time already served counts when the next failure comes (a typo
   * every 4 minutes against a 5-minute decay does not pile up as if nothing ever decayed).
   */
  lastFailureAt: number;
}

export const NO_LOCKOUT: LockoutState = { failures: 0, lockedUntil: 0, windowStart: 0, windowFailures: 0, lastFailureAt: 0 };

/** Failures still counted at `now`. A clock that jumped back forgives nothing. */
export function liveFailures(state: LockoutState, now: number, policy: Pick<LockoutPolicy, "decayMs">): number {
  if (now <= state.lastFailureAt) return state.failures;
  return Math.max(0, state.failures - Math.floor((now - state.lastFailureAt) / policy.decayMs));
}

/** Milliseconds left to wait, 0 when a code may be tried. A clock that jumped back never waits longer than the cap. */
export function lockoutRemaining(state: LockoutState, now: number, policy: LockoutPolicy): number {
  return Math.max(0, Math.min(state.lockedUntil - now, policy.maxDelayMs));
}

export interface FailureOutcome {
  state: LockoutState;
  /** Set when this failure locked the terminal. */
  lockedForMs: number;
  /** True once per window, when the failures in it reach the alarm threshold. */
  alarm: boolean;
}

export function recordFailure(state: LockoutState, now: number, policy: LockoutPolicy): FailureOutcome {
  const live = liveFailures(state, now, policy);
  const failures = live + 1;
  // Whole periods served move the clock on; a partial one is kept (none left to forgive: from now).
  const served = now > state.lastFailureAt ? Math.floor((now - state.lastFailureAt) / policy.decayMs) : 0;
  const decayFrom = live === 0 || now < state.lastFailureAt ? now : state.lastFailureAt + served * policy.decayMs;
  const inWindow = now >= state.windowStart && now - state.windowStart < policy.alarmWindowMs;
  const windowStart = inWindow ? state.windowStart : now;
  const windowFailures = inWindow ? state.windowFailures + 1 : 1;
  let lockedForMs = 0;
  if (failures >= policy.threshold) {
    // 1st lock: base, then doubling per further failure, capped.
    const exp = Math.min(failures - policy.threshold, 30);
    lockedForMs = Math.min(policy.baseDelayMs * 2 ** exp, policy.maxDelayMs);
  }
  return {
    state: { failures, lockedUntil: lockedForMs ? now + lockedForMs : state.lockedUntil, windowStart, windowFailures, lastFailureAt: decayFrom },
    lockedForMs,
    alarm: windowFailures === policy.alarmThreshold,
  };
}
