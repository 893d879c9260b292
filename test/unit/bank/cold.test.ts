// A refrigerated compartment's sensor in the running bank (sim): readings, alarm, clearance, a sensor that stops answering.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, testBank } from "../../helpers/bank.js";
import type { SimHardware } from "../../../src/drivers/sim/hardware.js";

const { open, advance } = fakeClockBanks();

describe("refrigerated compartment B01", () => {
  it("reads its sensor, raises an alarm out of bounds, clears it back inside, and reports a dead sensor", async () => {
    const b = await open();
    const sensor = (b.hw as SimHardware).thermometers.get("B01")!;
    await advance(1000);
    expect(b.rt.temperature.latest()).toEqual([expect.objectContaining({ compartment: "B01", celsius: 5, ok: true })]);
    sensor.set(12); // the door seal failed
    await advance(60_000);
    expect(b.events("alarm.temperature").map((e) => [e.compartment, e.data.celsius, e.data.maxC])).toEqual([["B01", 12, 8]]);
    expect(b.rt.technician.alarms()).toEqual([expect.objectContaining({ kind: "temperature", compartment: "B01" })]);
    await advance(5 * 60_000);
    expect(b.events("alarm.temperature")).toHaveLength(1);
    sensor.set(6);
    await advance(60_000);
    expect(b.events("alarm.cleared").map((e) => e.data.alarm)).toEqual(["temperature"]);
    expect(b.rt.technician.alarms()).toEqual([]);
    sensor.set(0.5); // too cold this time: the alarm listed is the latest one, with its own reading
    await advance(60_000);
    expect(b.rt.technician.alarms()).toEqual([expect.objectContaining({ kind: "temperature", detail: "0.5 °C outside 2..8 °C" })]);
    sensor.set(5);
    await advance(60_000);
    sensor.failing = true;
    await advance(3 * 60_000);
    expect(b.events("alarm.sensor_fault").map((e) => e.compartment)).toEqual(["B01"]);
    expect(b.rt.hardware.health().find((d) => d.kind === "sensor")?.health).toBe("faulted");
  });

  it("is given only to a parcel that asks for cold", async () => {
    const b = await open();
    b.hw.keypad.keys("*2468#1");
    expect(b.rt.ledger.compartments().find((c) => c.state === "loading")?.id).not.toBe("B01");
    const cold = await testBank();
    try {
      cold.hw.keypad.keys("*2468##1");
      expect(cold.screen()).toContain("Door B01 open");
    } finally {
      await cold.close();
    }
  });
});
