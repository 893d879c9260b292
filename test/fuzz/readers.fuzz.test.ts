// Reader bytes (short form; scripts/fuzz.ts runs 100,000): HID reports, serial keypad bytes,
// RDM6300 frames, Wiegand lines, badge and scan lines. See scripts/fuzz/readers.ts.
import { describe, expect, it } from "vitest";
import { fuzzReaders } from "../../scripts/fuzz/readers.js";
import { fakeClock, SEED, summary } from "../helpers/fuzz.js";

describe("reader fuzz", () => {
  const clock = fakeClock();

  it("20,000 inputs: nothing throws, every id is well formed, checksums and parity hold", async () => {
    const r = await fuzzReaders({ inputs: 20_000, seed: SEED, clock });
    expect(r.findings, summary(r)).toEqual([]);
    // a changed RDM6300 frame or a flipped Wiegand bit never passed; random ones rarely do
    expect(r.stats["wiegand.accepted.flipped"] ?? 0).toBe(0);
    expect(r.stats["rdm6300.accepted.random"] ?? 0).toBe(0);
    expect(r.stats["rdm6300.accepted.hexFrame"] ?? 0).toBeLessThan((r.stats["rdm6300.hexFrame"] ?? 0) / 64);
    expect(r.stats["hid.typedAccepted"]).toBeGreaterThan(100);
  });
});
