// Admin requests (short form; scripts/fuzz.ts runs 100,000): random and mutated lines over the
// daemon's real admin socket. See scripts/fuzz/admin.ts.
import { describe, expect, it } from "vitest";
import { fuzzAdmin } from "../../scripts/fuzz/admin.js";
import { fakeClock, SEED, summary } from "../helpers/fuzz.js";

describe("admin request fuzz", () => {
  const clock = fakeClock();

  it("3,000 lines: one clear reply each, no crash, doors only for valid open / relay-test", async () => {
    const r = await fuzzAdmin({ inputs: 3000, seed: SEED, clock });
    expect(r.findings, summary(r)).toEqual([]);
    expect(r.crashes + r.unlocks).toBe(0);
    expect(r.stats["refused.bad_input"]).toBeGreaterThan(500);
    expect(r.stats.ok).toBeGreaterThan(200);
  });
});
