// A lock that was never pulsed is not a lock that failed: a board that is down or does not answer
// leaves no fault, counts no pulse, keeps the person's code valid, and the bank heals by itself
// when the board answers again. In-process bank on the simulated hardware, fake timers.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

const lockOf = (b: TestBank, id: string) => b.rt.bank.layoutOf(id).lock;

async function stored(b: TestBank) {
  const d = await keypadDeposit(b, advance);
  await advance(31_000);
  return d;
}

function expectUntouched(b: TestBank, d: { compartment: string; parcel: string }, pulses: number) {
  expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "occupied", failedOpens: 0, pulses, faultReason: null });
  expect(b.rt.ledger.parcel(d.parcel)).toMatchObject({ status: "stored" });
  expect(b.events("compartment.fault")).toEqual([]);
}

describe("board outages", () => {
  it("board down: the code is refused without being used, nothing faults, and the same code opens once the board is back", async () => {
    const b = await open();
    const d = await stored(b);
    const pulses = b.rt.ledger.compartment(d.compartment)!.pulses;
    b.hw.setBoard("down");
    b.hw.keypad.keys(`${d.code}#`);
    expect(b.screen()).toContain(`Door ${d.compartment} unavailable`);
    expect(b.screen()).toContain("Code still valid");
    await advance(5000);
    expectUntouched(b, d, pulses);
    expect(b.hw.locks.pulses).toBe(1); // only the deposit's
    expect(b.events("device.fault").map((e) => e.data.compartments)).toEqual([b.rt.layout.map((l) => l.id)]);
    b.hw.setBoard("ok");
    expect(b.events("device.recovered")).toHaveLength(1);
    b.hw.keypad.keys(`${d.code}#`);
    expect(b.screen()).toContain(`Door ${d.compartment} open`);
    await advance(200);
    b.hw.doors.set(lockOf(b, d.compartment), "closed");
    expect(b.rt.ledger.parcel(d.parcel)?.status).toBe("picked_up");
  });

  it("a pulse refused unsent (the board went down while it waited for the power budget) rolls the pickup back: no fault, no pulse counted, code valid", async () => {
    const b = await open();
    const d = await stored(b);
    const pulses = b.rt.ledger.compartment(d.compartment)!.pulses;
    const other = b.rt.layout.find((l) => l.id !== d.compartment)!.id;
    void b.rt.technician.open(other, { user: "tech", reason: "test" }); // holds the one-coil budget
    b.hw.keypad.keys(`${d.code}#`); // accepted: the board still answered
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("unloading");
    b.hw.setBoard("down");
    await advance(2000);
    expectUntouched(b, d, pulses);
    expect(b.events("lock.unavailable").map((e) => [e.compartment, e.data.purpose])).toEqual([[d.compartment, "collect"]]);
    expect(b.events("pickup.aborted").map((e) => e.data.reason)).toEqual(["lock unavailable"]);
    expect(b.screen()).toContain("unavailable");
    b.hw.setBoard("ok");
    b.hw.keypad.keys(`${d.code}#`);
    await advance(200);
    expect(b.rt.ledger.compartment(d.compartment)?.door).toBe("open");
  });

  it("a silent board (unlock sent, never acknowledged) holds the pickup until the door can be read, then settles it: the code works again", async () => {
    const b = await open();
    const d = await stored(b);
    b.hw.setBoard("silent");
    b.hw.keypad.keys(`${d.code}#`);
    await advance(3000);
    // The sim's door switches can still be read: shut, never opened, so nothing happened.
    expect(b.events("lock.uncertain").map((e) => e.compartment)).toEqual([d.compartment]);
    expect(b.events("lock.settled").map((e) => [e.compartment, e.data.door])).toEqual([[d.compartment, "closed"]]);
    expect(b.events("compartment.fault")).toEqual([]);
    expect(b.rt.ledger.compartment(d.compartment)?.state).toBe("occupied");
    b.hw.setBoard("ok");
    b.hw.keypad.keys(`${d.code}#`);
    await advance(200);
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "unloading", door: "open" });
  });

  it("a courier is not sent to a compartment whose board is down, and is told the bank is unavailable rather than full", async () => {
    const b = await open();
    b.hw.setBoard("down");
    b.hw.keypad.keys("*2468#1");
    expect(b.screen()).toContain("Lockers unavailable");
    expect(b.events("deposit.started")).toEqual([]);
    expect(b.events("assignment.failed").map((e) => e.data.reason)).toEqual(["lock board not answering"]);
  });

  it("a technician's pulse to a board that is down reports unavailable and marks nothing", async () => {
    const b = await open();
    b.hw.setBoard("down");
    const r = await b.rt.technician.open("A03", { user: "tech", reason: "test" });
    expect(r).toMatchObject({ opened: false, unavailable: true });
    expect(b.rt.ledger.compartment("A03")?.state).toBe("free");
    expect(b.events("compartment.fault")).toEqual([]);
  });

  it("a jammed lock on a board that answers still faults (the coil fired, the door stayed shut)", async () => {
    const b = await open();
    const d = await stored(b);
    b.hw.locks.jammed.add(lockOf(b, d.compartment));
    b.hw.keypad.keys(`${d.code}#`);
    await advance(3000);
    expect(b.rt.ledger.compartment(d.compartment)).toMatchObject({ state: "fault", failedOpens: 1 });
  });

  it("relay-test does not pass a door that already read open before the pulse", async () => {
    const b = await open();
    b.hw.doors.set(lockOf(b, "A04"), "open");
    const [r] = await b.rt.technician.relayTest(["A04"], { user: "tech", reason: "test" });
    expect(r).toMatchObject({ compartment: "A04", opened: false, unverified: true });
    expect(r!.error).toContain("already reads open");
    expect(b.hw.locks.pulses).toBe(0);
  });
});
