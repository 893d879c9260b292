// The bank runtime in-process on the simulated hardware, with fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ActuationQueue } from "../../../src/bank/actuation.js";
import { DoorWaiters } from "../../../src/bank/doors.js";
import { MAX_PULSE_MS } from "../../../src/config/schema.js";
import { SimDoors, SimLockBoard } from "../../../src/drivers/sim/hardware.js";
import { silentLogger } from "../../../src/log.js";
import { keypadDeposit, testBank, type TestBank } from "../../helpers/bank.js";

const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
let bank: TestBank | undefined;

beforeEach(() => {
  vi.useFakeTimers({ now: new Date("2026-11-25T09:00:00Z") });
});
afterEach(async () => {
  await bank?.close();
  bank = undefined;
  vi.useRealTimers();
});

const lockOf = (b: TestBank, id: string) => b.rt.bank.layoutOf(id).lock;

describe("bank runtime", () => {
  it("opens every compartment of a badge holder one after the other, within the power budget", async () => {
    const b = (bank = await testBank());
    const deposits = [];
    for (let i = 0; i < 3; i++) deposits.push(await keypadDeposit(b, advance));
    expect(new Set(deposits.map((d) => d.compartment)).size).toBe(3);
    b.hw.locks.maxEnergized = 0;
    const unlocked: number[] = [];
    b.hw.on("unlock", (ch) => unlocked.push(ch));
    b.hw.keypad.badge("04a1b2c3"); // Ada's badge, lower case as some readers send it
    await advance(1000);
    expect(unlocked.sort()).toEqual(deposits.map((d) => lockOf(b, d.compartment)).sort());
    expect(b.hw.locks.maxEnergized).toBe(1);
    const started = b.events("pickup.started").slice(-3);
    expect(started.map((e) => e.actor)).toEqual(["p-1001", "p-1001", "p-1001"]);
    expect(started.map((e) => e.data.via)).toEqual(["badge", "badge", "badge"]);
    for (const d of deposits) b.hw.doors.set(lockOf(b, d.compartment), "closed");
    expect(b.events("parcel.picked_up").map((e) => e.actor)).toEqual(["p-1001", "p-1001", "p-1001"]);
  });

  it("energizes two locks at once when the power budget allows two", async () => {
    const b = (bank = await testBank((cfg) => (cfg.locks.maxConcurrent = 2)));
    for (let i = 0; i < 3; i++) await keypadDeposit(b, advance);
    b.hw.locks.maxEnergized = 0;
    b.hw.keypad.badge("04A1B2C3");
    await advance(1000);
    expect(b.hw.locks.maxEnergized).toBe(2);
  });

  it("opens nothing for an inactive person's badge or an unknown one", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.badge("04DEAD00");
    expect(b.screen()).toContain("Code not valid");
    b.hw.keypad.badge("FFFF0000");
    await advance(1000);
    expect(b.hw.locks.pulses).toBe(0);
    expect(b.events("code.rejected").map((e) => e.data.kind)).toEqual(["badge", "badge"]);
  });

  it("lets staff remove a parcel through the keypad; the pickup code dies with it", async () => {
    const b = (bank = await testBank());
    const { compartment, code, parcel } = await keypadDeposit(b, advance);
    const keypadNumber = b.rt.bank.layoutOf(compartment).keypadNumber;
    b.hw.keypad.keys("*8642#");
    expect(b.screen()).toContain("2 Remove");
    b.hw.keypad.keys(`2${keypadNumber}#`);
    expect(b.screen()).toContain(`Door ${compartment} open`);
    await advance(200);
    b.hw.doors.set(lockOf(b, compartment), "closed");
    expect(b.screen()).toContain(`Removed from ${compartment}`);
    b.hw.keypad.keys("42#"); // the shelf it went to
    expect(b.events("parcel.shelved").map((e) => [e.parcel, e.actor, e.data.shelf])).toEqual([[parcel, "staff-1", "42"]]);
    expect(b.rt.ledger.compartment(compartment)).toMatchObject({ state: "free", parcelId: null });
    expect(b.rt.ledger.parcel(parcel)).toMatchObject({ status: "removed", collectorId: "staff-1" });
    expect(b.events("parcel.removed")).toHaveLength(1);
    b.hw.keypad.keys("*"); // staff leaves
    await advance(5000);
    const pulses = b.hw.locks.pulses;
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain("Code not valid");
    expect(b.hw.locks.pulses).toBe(pulses);
  });

  it("lets staff open any door (audited) and take one out of service from the keypad", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*8642#");
    expect(b.screen()).toContain("3 Open  4 Disable");
    b.hw.keypad.keys("3205#");
    await advance(200);
    expect(b.events("admin.open").map((e) => [e.compartment, e.actor, e.data.reason])).toEqual([["B05", "staff-1", "staff at the keypad"]]);
    expect(b.hw.doors.read(lockOf(b, "B05"))).toBe("open");
    expect(b.screen()).toContain("Door B05 open");
    expect(b.events("alarm.forced_open")).toHaveLength(0);
    b.hw.doors.set(lockOf(b, "B05"), "closed");
    await advance(5000);
    b.hw.keypad.keys("4102#"); // the override ended the staff session: these digits are a (wrong) code
    expect(b.screen()).toContain("Code not valid");
    b.hw.keypad.keys("*8642#4102#");
    expect(b.screen()).toContain("A02 out of service");
    expect(b.rt.ledger.compartment("A02")?.enabled).toBe(false);
    expect(b.events("compartment.disabled").map((e) => [e.compartment, e.actor])).toEqual([["A02", "staff-1"]]);
    expect(b.rt.terminal.state).toBe("idle");
    const { compartment } = await keypadDeposit(b, advance);
    expect(compartment).toBe("A03");
  });

  it("says which size is full, records it, and offers a larger one only when policy allows", async () => {
    const b = (bank = await testBank((cfg) => (cfg.policies.offerLarger = false)));
    for (let i = 0; i < 4; i++) await keypadDeposit(b, advance, { size: "3" });
    b.hw.keypad.keys("*2468#3");
    expect(b.screen()).toContain("No L free");
    expect(b.events("assignment.failed").map((e) => e.data.size)).toEqual(["L"]);
    expect(b.rt.ledger.compartments().filter((c) => c.state === "loading")).toHaveLength(0);
  });

  it("gives the accessible compartment only to a parcel that asks for it (# at the size menu)", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*2468#");
    expect(b.screen()).toContain("#=cold/low  *=back");
    b.hw.keypad.keys("##");
    expect(b.screen()).toContain("Parcel size? (low)");
    b.hw.keypad.keys("1");
    expect(b.rt.ledger.compartment("A01")?.state).toBe("loading");
    await advance(200);
    b.hw.doors.set(lockOf(b, "A01"), "closed");
    b.hw.keypad.keys("1001#");
    await advance(5000);
    // "Another parcel?" 1 = yes; # # = low; 1 = S; # = open: the only low one is taken, no ordinary one instead
    b.hw.keypad.keys("1##1#");
    expect(b.screen()).toContain("No accessible S free");
    expect(b.events("assignment.failed").map((e) => e.data)).toEqual([{ size: "S", terminal: "keypad-1", accessible: true }]);
  });

  it("gives the next size up when the asked size is full and policy allows", async () => {
    const b = (bank = await testBank());
    for (let i = 0; i < 10; i++) await keypadDeposit(b, advance, { size: "1" }); // 10 plain S (A01 accessible, B01 cold)
    const { compartment } = await keypadDeposit(b, advance, { size: "1" });
    expect(b.rt.ledger.compartment(compartment)?.size).toBe("M");
  });

  it("asks again for an unknown recipient number and keeps the parcel waiting", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*2468#1");
    await advance(200);
    const c = b.rt.ledger.compartments().find((x) => x.state === "loading")!;
    b.hw.doors.set(lockOf(b, c.id), "closed");
    b.hw.keypad.keys("9999#");
    expect(b.screen()).toContain("Unknown recipient");
    expect(b.rt.ledger.parcel(c.parcelId!)?.status).toBe("awaiting_recipient");
    b.hw.keypad.keys("1002#");
    expect(b.rt.ledger.parcel(c.parcelId!)).toMatchObject({ status: "stored", recipientId: "p-1002" });
  });

  it("lets the courier take a parcel back before naming a recipient", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*2468#1");
    await advance(200);
    const c = b.rt.ledger.compartments().find((x) => x.state === "loading")!;
    const parcel = c.parcelId!;
    b.hw.doors.set(lockOf(b, c.id), "closed");
    expect(b.screen()).toContain("*=take back");
    b.hw.keypad.keys("*");
    expect(b.screen()).toContain(`Door ${c.id} open`);
    await advance(200);
    b.hw.doors.set(lockOf(b, c.id), "closed");
    expect(b.screen()).toContain("Deposit cancelled");
    expect(b.rt.ledger.compartment(c.id)).toMatchObject({ state: "free", parcelId: null });
    expect(b.rt.ledger.parcel(parcel)).toMatchObject({ status: "cancelled", compartmentId: c.id }); // where it was, for the record
    expect(b.events().filter((e) => e.parcel === parcel).map((e) => e.type)).toEqual([
      "deposit.started",
      "parcel.awaiting_recipient",
      "pickup.started",
      "parcel.cancelled",
    ]);
  });

  it("ends the courier's next-parcel session sooner than the ordinary idle timeout", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*2468#1");
    await advance(200);
    const c = b.rt.ledger.compartments().find((x) => x.state === "loading")!;
    b.hw.doors.set(lockOf(b, c.id), "closed");
    b.hw.keypad.keys("1001#");
    expect(b.screen()).toContain(`Stored in ${c.id}`);
    await advance(10_500);
    expect(b.screen()).toContain("Enter code");
    b.hw.keypad.keys("1"); // a recipient's first digit is a code, not a size
    expect(b.screen()).toContain("Code: *");
    expect(b.rt.ledger.compartments().filter((x) => x.state === "loading")).toHaveLength(0);
  });

  it("thanks the recipient when the door closes after a pickup", async () => {
    const b = (bank = await testBank());
    const { compartment, code } = await keypadDeposit(b, advance);
    await advance(5000);
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain(`Door ${compartment} open`);
    await advance(200);
    b.hw.doors.set(lockOf(b, compartment), "closed");
    expect(b.screen()).toBe("Thank you");
  });

  it("resets the dialogue after the idle timeout", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*24");
    expect(b.screen()).toContain("PIN: **");
    await advance(29_000);
    expect(b.screen()).toContain("PIN: **");
    await advance(2_000);
    expect(b.screen()).toContain("Enter code");
  });

  it("keeps the keypad locked across a restart and lets it go when the wait is over", async () => {
    const b = (bank = await testBank());
    const { code } = await keypadDeposit(b, advance);
    const wrong = code === "583920" ? "583921" : "583920";
    for (let i = 0; i < 5; i++) b.hw.keypad.keys(`${wrong}#`);
    expect(b.events("terminal.locked_out")).toHaveLength(1);
    await b.rt.stop();
    bank = await testBank(undefined, b.dir);
    bank.hw.keypad.keys(`${code}#`);
    expect(bank.screen()).toMatch(/Too many tries \| Wait 30 s/);
    expect(bank.hw.locks.pulses).toBe(0);
    await advance(30_000);
    bank.hw.keypad.keys(`${code}#`);
    expect(bank.hw.locks.pulses).toBe(1);
  });

  it("raises a forced-open alarm for a door that opens without an unlock", async () => {
    const b = (bank = await testBank());
    const { compartment } = await keypadDeposit(b, advance);
    b.hw.doors.set(lockOf(b, compartment), "open");
    expect(b.events("alarm.forced_open").map((e) => e.compartment)).toEqual([compartment]);
  });

  it("fails a deposit into a jammed compartment: fault, parcel not recorded there, courier picks again", async () => {
    const b = (bank = await testBank((cfg) => (cfg.hardware.springOpen = false)));
    b.hw.keypad.keys("*2468#1");
    const c = b.rt.ledger.compartments().find((x) => x.state === "loading")!;
    await advance(2000);
    expect(b.hw.locks.pulses).toBe(2);
    expect(b.rt.ledger.compartment(c.id)).toMatchObject({ state: "fault", parcelId: null, failedOpens: 1, pulses: 2 });
    expect(b.screen()).toContain(`Door ${c.id} jammed`);
    expect(b.events("deposit.aborted")).toHaveLength(1);
  });

  it("leaves every relay off when it stops mid-pulse", async () => {
    const b = (bank = await testBank());
    b.hw.keypad.keys("*2468#1");
    expect(b.hw.locks.energized.size).toBe(1);
    await b.rt.stop();
    expect(b.hw.locks.energized.size).toBe(0);
  });
});

describe("actuation queue", () => {
  it("never pulses longer than the hard cap, whatever it is asked", async () => {
    const doors = new SimDoors([0]);
    const seen: number[] = [];
    const board = new SimLockBoard({ channels: [0], springOpen: true, openDelayMs: 10, terminal: "t" }, doors, (_c, ms) => seen.push(ms));
    const waiters = new DoorWaiters(() => doors.read(0) === "open");
    doors.on("change", (_ch, state) => state === "open" && waiters.opened("A01"));
    const q = new ActuationQueue({
      locks: board,
      doors: waiters,
      log: silentLogger(),
      options: { pulseMs: 60_000, maxConcurrent: 1, openVerifyMs: 3000, retries: 0 },
      beforeRetry: () => {},
    });
    const result = q.open("A01", 0);
    await advance(MAX_PULSE_MS);
    expect(seen).toEqual([MAX_PULSE_MS]);
    expect(board.energized.size).toBe(0);
    expect(await result).toEqual({ opened: true, attempts: 1, error: undefined });
  });
});
