// Keypad streams (short form; scripts/fuzz.ts runs 100,000): random keys, badges and scans never
// open a door, start a session, or show an internal error. See scripts/fuzz/keypad.ts.
import { describe, expect, it } from "vitest";
import { fuzzKeypad } from "../../scripts/fuzz/keypad.js";
import { fakeClock, SEED, summary } from "../helpers/fuzz.js";

describe("keypad fuzz", () => {
  const clock = fakeClock();

  it.each(["lenient", "default"] as const)("%s lockout: 3,000 random inputs open nothing", async (lockout) => {
    const r = await fuzzKeypad({ inputs: 3000, seed: SEED, clock, lockout });
    expect(r.findings, summary(r)).toEqual([]);
    expect(r.crashes + r.unlocks).toBe(0);
    // the inputs reached the ledger's checks, not only the lockout
    expect(r.stats.codeRejected ?? 0).toBeGreaterThan(lockout === "lenient" ? 500 : 5);
  });
});
