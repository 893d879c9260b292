import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "../../src/backoff.js";

describe("backoff", () => {
  it("grows exponentially up to the cap, never below half the base", () => {
    const hi = { baseMs: 100, capMs: 5000, random: () => 1 };
    expect([0, 1, 2, 3, 10].map((n) => backoffDelay(n, hi))).toEqual([100, 200, 400, 800, 5000]);
    const lo = { baseMs: 100, capMs: 5000, random: () => 0 };
    expect(backoffDelay(10, lo)).toBe(50);
  });
  it("counts failures and resets after a success", () => {
    const b = new Backoff({ baseMs: 10, capMs: 1000, random: () => 1 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    expect(b.failures).toBe(3);
    b.reset();
    expect(b.next()).toBe(10);
  });
});
