// Property test of the bank's custody rules over random command sequences, on the real in-process
// bank (simulated hardware, fake timers, a temporary data directory per run; no mocks of our code).
// A run mixes keypad key runs, codes the bank really issued (exact, twice, one digit off), badge
// taps, door edges, jammed locks, technician opens and enable/disable, time, and restarts on the
// same data directory; the invariants (see model.ts, Scenario.check) are checked after every
// command. On failure fast-check prints the seed, the path and the shrunk sequence; a shrunk
// sequence becomes a plain test below (runScenario replays it deterministically).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { commands, emptyCoverage, runScenario } from "./model.js";

describe("bank custody invariants (property)", () => {
  it("hold over random sequences of keypad, badge, door, lock, technician, time and restart", { timeout: 120_000 }, async () => {
    const coverage = emptyCoverage();
    await fc.assert(
      fc.asyncProperty(commands(40), async (cmds) => {
        await runScenario(cmds, coverage);
      }),
      { numRuns: 50 },
    );
    expect(coverage.codesIssued).toBeGreaterThan(0);
    console.log(coverage);
  });
});
