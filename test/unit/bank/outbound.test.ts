// Outbound parcels (returns): drop-off by badge or drop-off code, collection by a courier.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, type TestBank } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

const lockOf = (b: TestBank, id: string) => b.rt.bank.layoutOf(id).lock;

/** Whatever compartment is open for a deposit now: close it after the spring opened it. */
async function closeLoading(b: TestBank): Promise<string> {
  const c = b.rt.ledger.compartments().find((x) => x.state === "loading");
  if (!c) throw new Error(`nothing loading: ${b.screen()}`);
  await advance(200);
  b.hw.doors.set(lockOf(b, c.id), "closed");
  return c.id;
}

describe("outbound parcels", () => {
  it("a recipient with nothing to pick up drops a parcel off by badge; a courier collects it", async () => {
    const b = await open();
    const codes: string[] = [];
    b.rt.bank.on("codeIssued", (n) => codes.push(n.code));
    b.hw.keypad.badge("04A1B2C4");
    expect(b.screen()).toContain("No parcels for you");
    await advance(5000);
    expect(b.screen()).toContain("1 = drop one off"); // no default: he chooses
    b.hw.keypad.keys("1");
    expect(b.screen()).toContain("Drop off: size?");
    b.hw.keypad.keys("2#");
    const compartment = await closeLoading(b);
    expect(b.screen()).toContain("Parcel dropped off");
    const parcel = b.rt.ledger.compartment(compartment)!.parcelId!;
    expect(b.rt.ledger.parcel(parcel)).toMatchObject({ direction: "outbound", status: "stored", depositorId: "p-1002", recipientId: null });
    expect(codes).toEqual([]); // nobody picks an outbound parcel up with a code

    await advance(5000);
    b.hw.keypad.keys("*2468#");
    expect(b.screen()).toContain("0 = collect 1 out");
    b.hw.keypad.keys("0");
    expect(b.screen()).toContain(`Doors ${compartment}`);
    await advance(200);
    b.hw.doors.set(lockOf(b, compartment), "closed");
    expect(b.screen()).toContain("Outbound collected");
    expect(b.rt.ledger.parcel(parcel)).toMatchObject({ status: "collected", collectorId: "courier-1" });
    expect(b.events().filter((e) => e.parcel === parcel).map((e) => [e.type, e.actor])).toEqual([
      ["deposit.started", "p-1002"],
      ["parcel.dropped_off", "p-1002"],
      ["pickup.started", "courier-1"],
      ["parcel.collected", "courier-1"],
    ]);
    expect(b.rt.ledger.compartment(compartment)).toMatchObject({ state: "free", parcelId: null });
  });

  it("a drop-off code opens a compartment once", async () => {
    const b = await open();
    const code = b.rt.bank.issueDropoffCode("p-1003", "server");
    expect(code).toMatch(/^[0-9]{6}$/);
    expect(b.events("code.issued").map((e) => e.data)).toEqual([{ kind: "dropoff", person: "p-1003" }]);
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain("Drop off: size?");
    b.hw.keypad.keys("1");
    await closeLoading(b);
    expect(b.events("parcel.dropped_off").map((e) => e.actor)).toEqual(["p-1003"]);
    await advance(5000);
    const pulses = b.hw.locks.pulses;
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain("Code not valid");
    expect(b.hw.locks.pulses).toBe(pulses);
  });

  it("gives the drop-off code back when the lock fails", async () => {
    const b = await open((cfg) => (cfg.hardware.springOpen = false));
    const code = b.rt.bank.issueDropoffCode("p-1003", "server");
    b.hw.keypad.keys(`${code}#1`);
    await advance(2000); // two pulses, no door: fault
    expect(b.events("deposit.aborted")).toHaveLength(1);
    await advance(5000);
    expect(b.screen()).toContain("Drop off: size?"); // asked again, still as a drop-off
    b.hw.keypad.keys("*");
    b.hw.keypad.keys(`${code}#`);
    expect(b.screen()).toContain("Drop off: size?");
  });
});
