// What the fuzzers found, each replayed on its own with its minimal input. A finding's test is
// Fixed: the edge refuses text that is not well-formed Unicode, and the ledger hashes TEXT columns as
// SQLite gives them back (lone surrogates as U+FFFD).
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/log.js";
import { Runtime } from "../../src/runtime.js";
import { CommandRouter } from "../../src/sync/commands.js";
import { fuzzBank, type FuzzBank } from "../../scripts/fuzz/bank.js";

let bank: FuzzBank | undefined;
afterEach(async () => {
  await bank?.close();
  bank = undefined;
});

describe("fuzz findings", () => {
  // mqtt fuzzer, seed 20261126 (long form, unsigned), input 897: `open` with args.actor holding a
  // lone UTF-16 surrogate. The event is hashed with the surrogate; SQLite stores its actor column as
  // UTF-8 and reads back U+FFFD: the custody chain no longer verifies, and the bank refuses to start.
  it("an open command's actor with a lone surrogate keeps the custody chain whole", async () => {
    bank = await fuzzBank();
    const { rt } = bank;
    const router = new CommandRouter({
      ledger: rt.ledger,
      bank: rt.bank,
      remote: rt.remote,
      site: "hq",
      device: "bank-01",
      clockSkewMs: 60_000,
      now: () => Date.now(),
      log: silentLogger(),
      replay: () => 0,
      publishState: () => undefined,
    });
    const payload = `{"id":"c1","args":{"compartment":"A05","reason":"courier called","actor":"\\ud800"},"issuedAt":${Date.now()}}`;
    await router.handle("open", payload);
    expect(rt.ledger.verify()).toMatchObject({ ok: true });
    await rt.stop();
    const again = new Runtime({ config: bank.config, dataDir: bank.dataDir, log: silentLogger(), version: "test", simSocket: false, adminSocket: false });
    await again.start(); // today: LockerError storage "the custody chain does not verify at seq …"
    await again.stop();
  });
});

