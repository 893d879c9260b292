// runAt: a wait that ends at its time, not at the next tick of Node's millisecond timers.
//
// The model scheduler (test/helpers/loop-model.ts) behaves as Node's timers do on a real loop: a
// timer of n ms fires when the loop's cached whole-millisecond clock has moved n ms on.
import { describe, expect, it } from "vitest";
import { runAt } from "../../../src/drivers/run-at.js";
import { TURN_MS, loopModel as model } from "../../helpers/loop-model.js";

describe("runAt", () => {
  it("with a fine stretch, runs within one loop turn of its time whatever the timer's error, never before it", () => {
    for (const early of [0, 0.3, 0.9, 0.99]) {
      for (const wait of [0.4, 1, 1.7, 5, 12.3]) {
        const m = model(() => early);
        const at = 0.25 + wait;
        // The loop's clock stands at 0.25 ms: the call comes a quarter millisecond into a tick.
        m.s.setImmediate(() => undefined);
        m.run();
        let ranAt = -1;
        runAt(at, () => (ranAt = m.now), 1, m.s);
        m.run();
        expect(ranAt, `wait ${wait}, timers ${early} ms early`).toBeGreaterThanOrEqual(at);
        expect(ranAt - at, `wait ${wait}, timers ${early} ms early`).toBeLessThanOrEqual(TURN_MS + 1e-9);
      }
    }
  });

  it("a wait shorter than the fine stretch takes no timer at all", () => {
    const m = model(() => 0.5);
    let ran = false;
    runAt(0.8, () => (ran = true), 1, m.s);
    m.run();
    expect(ran).toBe(true);
    expect(m.log).toEqual([]);
  });

  it("without a fine stretch only timers wait (no loop turns spent), and it still never runs early", () => {
    for (const early of [0, 0.5, 0.99]) {
      const m = model(() => early);
      let ranAt = -1;
      runAt(3.4, () => (ranAt = m.now), 0, m.s);
      expect(m.turns()).toBe(0);
      m.run();
      expect(ranAt).toBeGreaterThanOrEqual(3.4);
      expect(m.log.length).toBeGreaterThanOrEqual(1);
    }
  });

  it("when its time has come, runs at the next loop turn, never inside the call (its cancel function is the caller's first)", () => {
    const m = model(() => 0);
    let ran = 0;
    const cancel = runAt(-1, () => ran++, 1, m.s);
    expect(ran).toBe(0);
    m.run();
    expect(ran).toBe(1);
    runAt(-1, () => ran++, 0, m.s)();
    m.run();
    expect(ran).toBe(1);
    cancel();
  });

  it("cancelled, runs never: while on its timer and while turning the loop", () => {
    const m = model(() => 0.2);
    let ran = 0;
    const onTimer = runAt(10, () => ran++, 1, m.s);
    onTimer();
    m.run();
    const turning = runAt(m.now + 0.5, () => ran++, 1, m.s);
    expect(m.turns()).toBe(1);
    turning();
    m.run();
    expect(ran).toBe(0);
  });

  it("on Node's own timers, never runs before its time (a plain setTimeout of the rounded-up wait can)", async () => {
    let early = 0;
    for (let i = 0; i < 150; i++) {
      const at = performance.now() + Math.random() * 3;
      const lateness = await new Promise<number>((resolve) => runAt(at, () => resolve(performance.now() - at), i % 2));
      if (lateness < 0) early++;
      // Some work between waits, so the loop's cached clock lags the real one as it does in a daemon.
      const busy = performance.now() + Math.random() * 0.8;
      while (performance.now() < busy);
    }
    expect(early).toBe(0);
  });
});
