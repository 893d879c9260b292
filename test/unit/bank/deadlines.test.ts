// Pickup deadlines with a controlled clock: reminders, escalation, expiry, restarts and clock jumps.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../../src/config/load.js";
import { dueNow, noticesFor } from "../../../src/domain/deadlines.js";
import { exampleConfig } from "../../helpers/daemon.js";
import { keypadDeposit, testBank, type TestBank } from "../../helpers/bank.js";

const HOUR = 3_600_000;
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
const T0 = new Date("2026-11-25T09:00:00Z").getTime();
let bank: TestBank | undefined;

beforeEach(() => vi.useFakeTimers({ now: T0 }));
afterEach(async () => {
  await bank?.close();
  bank = undefined;
  vi.useRealTimers();
});

const notices = (b: TestBank) => b.events().filter((e) => ["parcel.reminder", "parcel.escalated", "parcel.expired"].includes(e.type));

describe("deadline rules", () => {
  const policies = parseConfig(exampleConfig()).policies;

  it("reminds at 24 h, escalates at 48 h, expires at 72 h", () => {
    expect(noticesFor(policies, T0, "S", false)).toEqual([
      { kind: "reminder", stage: 1, dueAt: T0 + 24 * HOUR },
      { kind: "escalation", stage: 2, dueAt: T0 + 48 * HOUR },
      { kind: "expiry", stage: 3, dueAt: T0 + 72 * HOUR },
    ]);
  });

  it("takes expiry per size and for refrigerated compartments, dropping reminders past it", () => {
    const p = { ...policies, expiryHoursBySize: { L: 120 }, refrigeratedExpiryHours: 30 };
    expect(noticesFor(p, T0, "L", false).at(-1)).toEqual({ kind: "expiry", stage: 3, dueAt: T0 + 120 * HOUR });
    expect(noticesFor(p, T0, "L", true)).toEqual([
      { kind: "reminder", stage: 1, dueAt: T0 + 24 * HOUR },
      { kind: "expiry", stage: 2, dueAt: T0 + 30 * HOUR },
    ]);
  });

  it("sends only the most advanced of several overdue notices", () => {
    const all = noticesFor(policies, T0, "M", false);
    expect(dueNow(all, T0 + 23 * HOUR)).toEqual({ send: undefined, superseded: [] });
    expect(dueNow(all, T0 + 50 * HOUR)).toEqual({ send: all[1], superseded: [all[0]] });
    expect(dueNow(all, T0 + 500 * HOUR)).toEqual({ send: all[2], superseded: [all[0], all[1]] });
  });
});

describe("deadline scheduler", () => {
  it("sends each notice once, at its time, and then keeps the parcel for staff", async () => {
    const b = (bank = await testBank());
    const { compartment, code, parcel } = await keypadDeposit(b, advance);
    await advance(24 * HOUR - 5 * 60_000);
    expect(notices(b)).toEqual([]);
    await advance(10 * 60_000);
    expect(notices(b).map((e) => [e.type, e.parcel, e.actor])).toEqual([["parcel.reminder", parcel, "p-1001"]]);
    await advance(24 * HOUR);
    await advance(24 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated", "parcel.expired"]);
    expect(b.rt.ledger.parcel(parcel)?.expiredAt).not.toBeNull();

    // The recipient comes late: nothing opens, and it does not count as a wrong code.
    const pulses = b.hw.locks.pulses;
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain("Pickup time over");
    b.hw.keypad.badge("04A1B2C3");
    expect(b.hw.locks.pulses).toBe(pulses);
    expect(b.events("code.rejected")).toHaveLength(0);
    expect(b.rt.technician.alarms()).toEqual(expect.arrayContaining([expect.objectContaining({ kind: "expired", compartment })]));

    // Staff take it out; nothing more is sent for it.
    await advance(10_000);
    b.hw.keypad.keys(`*8642#2${b.rt.bank.layoutOf(compartment).keypadNumber}#`);
    await advance(200);
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    expect(b.rt.ledger.parcel(parcel)?.status).toBe("removed");
    await advance(200 * HOUR);
    expect(notices(b)).toHaveLength(3);
  });

  it("sends nothing for a parcel picked up in time", async () => {
    const b = (bank = await testBank());
    const { compartment, code } = await keypadDeposit(b, advance);
    await advance(5 * HOUR);
    b.hw.keypad.keys(`${code}#`);
    await advance(200);
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    // Closing the door settles its notices there and then, not at the next scheduler pass.
    expect(b.rt.ledger.db.prepare("SELECT outcome, count(*) AS n FROM deadlines GROUP BY outcome").all()).toEqual([{ outcome: "void", n: 3 }]);
    await advance(100 * HOUR);
    expect(notices(b)).toEqual([]);
  });

  it("neither loses nor repeats a notice across a restart", async () => {
    const b = (bank = await testBank());
    await keypadDeposit(b, advance);
    await advance(25 * HOUR);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder"]);
    await b.rt.stop();
    await advance(30 * HOUR); // down past the escalation
    bank = await testBank(undefined, b.dir);
    expect(notices(bank).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated"]);
    await advance(HOUR);
    expect(notices(bank).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated"]);
  });

  it("sends one notice, not a storm, when the clock jumps forward by days", async () => {
    const b = (bank = await testBank());
    const parcels = [];
    for (let i = 0; i < 3; i++) parcels.push((await keypadDeposit(b, advance)).parcel);
    vi.setSystemTime(Date.now() + 9 * 24 * HOUR); // NTP corrects a Pi that booted without an RTC
    await advance(60_000);
    const sent = notices(b);
    expect(sent.map((e) => e.type)).toEqual(["parcel.expired", "parcel.expired", "parcel.expired"]);
    expect(sent.map((e) => e.parcel).sort()).toEqual([...parcels].sort());
    expect(sent[0]!.data.superseded).toEqual(["reminder", "escalation"]);
    await advance(10 * 60_000);
    expect(notices(b)).toHaveLength(3);
  });

  it("re-sends nothing when the clock jumps back", async () => {
    const b = (bank = await testBank());
    await keypadDeposit(b, advance);
    await advance(25 * HOUR);
    expect(notices(b)).toHaveLength(1);
    vi.setSystemTime(Date.now() - 2 * 24 * HOUR);
    await advance(2 * HOUR);
    expect(notices(b)).toHaveLength(1);
    vi.setSystemTime(Date.now() + 3 * 24 * HOUR); // corrected again: 51 h after the deposit
    await advance(60_000);
    expect(notices(b).map((e) => e.type)).toEqual(["parcel.reminder", "parcel.escalated"]);
  });
});
