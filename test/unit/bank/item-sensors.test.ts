// Item sensors: a pickup that leaves the parcel inside is reported and the compartment is held
// out of assignment until a technician clears it.
import { describe, expect, it } from "vitest";
import { ITEM_SETTLE_MS } from "../../../src/bank/item-sensors.js";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";

describe("item sensors", () => {
  const banks = fakeClockBanks();

  it("reports a pickup whose parcel is still inside, and keeps the compartment out of use until enabled", async () => {
    const b = await banks.open();
    const { compartment, code } = await keypadDeposit(b, banks.advance);
    const lock = b.rt.bank.layoutOf(compartment).lock;
    b.hw.items.set(lock, true); // the parcel is in
    b.hw.keypad.keys(`${code}#`);
    await banks.advance(200);
    b.hw.doors.set(lock, "closed"); // ... and the door shut on it again
    expect(b.rt.ledger.compartment(compartment)?.state).toBe("free");
    await banks.advance(ITEM_SETTLE_MS + 10);
    const alarm = b.events("alarm.item_left_inside").at(-1);
    expect(alarm).toMatchObject({ compartment, data: { via: "code" } });
    expect(b.rt.ledger.compartment(compartment)?.inspectSince).not.toBeNull();
    b.rt.technician.setEnabled(compartment, true, { user: "tech", reason: "took the parcel out" });
    expect(b.rt.ledger.compartment(compartment)?.inspectSince).toBeNull();
  });

  it("says nothing when the sensor sees the compartment empty, or there is no sensor", async () => {
    const b = await banks.open();
    for (const sensor of [false, undefined]) {
      const { compartment, code } = await keypadDeposit(b, banks.advance);
      const lock = b.rt.bank.layoutOf(compartment).lock;
      if (sensor !== undefined) b.hw.items.set(lock, sensor);
      await banks.advance(5000);
      b.hw.keypad.keys(`${code}#`);
      await banks.advance(200);
      b.hw.doors.set(lock, "closed");
      await banks.advance(ITEM_SETTLE_MS + 10);
      expect(b.rt.ledger.compartment(compartment)).toMatchObject({ state: "free", inspectSince: null });
    }
    expect(b.events("alarm.item_left_inside")).toHaveLength(0);
  });
});
