// Rate limits that cannot be side-stepped: a valid PIN between wrong codes resets nothing, badge
// taps are limited like codes, failures decay with time only, and a flood writes a bounded number
// of ledger rows. In-process bank on the simulated hardware, fake timers.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

describe("keypad rate limits", () => {
  it("4 wrong codes, then the courier PIN, repeated: the terminal still locks (a valid PIN resets nothing)", async () => {
    const b = await open();
    let tried = 0;
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 4; i++) {
        b.hw.keypad.keys(`${String(100_000 + tried++).padStart(6, "0")}#`);
      }
      b.hw.keypad.keys("*2468#*"); // the courier logs in and out
    }
    expect(b.events("terminal.locked_out").length).toBeGreaterThan(0);
    // While locked, no code is even checked: far fewer than the 40 typed were tried.
    expect(b.events("code.rejected").length).toBeLessThan(20);
  });

  it("unknown badges are limited like codes and lock the terminal; a burst writes a bounded number of rows", async () => {
    const b = await open();
    const before = b.rt.ledger.headSeq;
    for (let i = 0; i < 2000; i++) b.hw.keypad.badge((0xab000000 + i).toString(16).toUpperCase());
    const written = b.rt.ledger.headSeq - before;
    expect(b.events("terminal.locked_out").length).toBeGreaterThan(0);
    expect(written).toBeLessThan(20);
    // And the summary says how many were refused unchecked, on the next record.
    await advance(31_000);
    b.hw.keypad.badge("FFFF0001");
    const last = b.events("code.rejected").at(-1)!;
    expect(last.data.refusedWhileLocked).toBeGreaterThan(1900);
  });

  it("a known badge is refused while the terminal is locked out, and works once the lockout has passed", async () => {
    const b = await open();
    const d = await keypadDeposit(b, advance);
    for (let i = 0; i < 5; i++) b.hw.keypad.badge(`DEAD00${String(i).padStart(2, "0")}`);
    expect(b.events("terminal.locked_out")).toHaveLength(1);
    b.hw.keypad.badge("04A1B2C3"); // Ada
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("occupied");
    expect(b.screen()).toContain("Too many tries");
    await advance(31_000);
    b.hw.keypad.badge("04A1B2C3");
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("unloading");
  });

  it("failures decay with time only: after a quiet spell one typo does not lock", async () => {
    const b = await open();
    for (let i = 0; i < 4; i++) b.hw.keypad.keys(`${900_000 + i}#`);
    expect(b.events("terminal.locked_out")).toHaveLength(0);
    b.hw.keypad.keys("999999#"); // the 5th in a row: locked
    expect(b.events("terminal.locked_out")).toHaveLength(1);
    await advance(b.config.lockout.decayMs * 5 + 31_000);
    b.hw.keypad.keys("999998#");
    expect(b.events("terminal.locked_out")).toHaveLength(1);
  });
});
