// MQTT command payloads (short form; scripts/fuzz.ts runs 100,000): random and mutated payloads
// for every command name through the real CommandRouter, with and without a server key.
import { describe, expect, it } from "vitest";
import { fuzzMqtt } from "../../scripts/fuzz/mqtt.js";
import { fakeClock, SEED, summary } from "../helpers/fuzz.js";

describe("MQTT command fuzz", () => {
  const clock = fakeClock();

  it.each([true, false])("server key %s: 3,000 payloads, valid envelopes, no unlock or change without a signature", async (verifier) => {
    const r = await fuzzMqtt({ inputs: 3000, seed: SEED, clock, verifier });
    expect(r.findings, summary(r)).toEqual([]);
    expect(r.crashes + r.unlocks).toBe(0);
    // deep enough: commands executed, doors opened by accepted opens
    expect(r.stats["ok.reserve"] ?? 0).toBeGreaterThan(5);
    expect(r.stats.pulses ?? 0).toBeGreaterThan(5);
  });
});
