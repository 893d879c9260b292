// Board frames (short form; scripts/fuzz.ts runs 100,000): random and mutated Kerong and 0x8A
// byte streams, and the emulated boards' answers. See scripts/fuzz/boards.ts.
import { describe, expect, it } from "vitest";
import { fuzzBoards } from "../../scripts/fuzz/boards.js";
import { SEED, summary } from "../helpers/fuzz.js";

describe("board frame fuzz", () => {
  it("20,000 inputs: nothing throws, every byte is accounted for, no bad checksum gets through", async () => {
    const r = await fuzzBoards({ inputs: 20_000, seed: SEED });
    expect(r.findings, summary(r)).toEqual([]);
    expect(r.stats["boards.mutated.frames"]).toBeGreaterThan(1000); // resynchronised after damage
    expect(r.stats["emulator.answers"]).toBeGreaterThan(100);
  });
});
