// Door alarms with a controlled clock: a door left open, and a door forced open.
import { describe, expect, it } from "vitest";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

describe("door alarms", () => {
  it("raises door_left_open after the limit, prompts and sounds, and clears on close", async () => {
    const b = await open();
    const { compartment, code } = await keypadDeposit(b, advance);
    await advance(10_000);
    const sounds: string[] = [];
    b.hw.on("buzzer", (p) => sounds.push(p));
    b.hw.keypad.keys(`${code}#`);
    await advance(59_000); // the recipient takes the parcel and walks away, door open
    expect(b.events("alarm.door_left_open")).toHaveLength(0);
    await advance(2_000);
    expect(b.events("alarm.door_left_open").map((e) => [e.compartment, e.data.openForS])).toEqual([[compartment, 60]]);
    expect(sounds).toContain("alarm");
    expect(b.screen()).toBe(`Please close | door ${compartment}`);
    await advance(120_000);
    expect(b.events("alarm.door_left_open")).toHaveLength(1); // once, not every minute
    b.hw.doors.set(b.rt.bank.layoutOf(compartment).lock, "closed");
    expect(b.events("alarm.cleared").map((e) => [e.compartment, e.data.alarm])).toEqual([[compartment, "door_left_open"]]);
    expect(b.events("parcel.picked_up")).toHaveLength(1);
  });

  it("flags a forced door for inspection: not assigned until a technician clears it", async () => {
    const b = await open();
    const a02 = b.rt.bank.layoutOf("A02").lock;
    b.hw.doors.set(a02, "open"); // nobody unlocked it
    b.hw.doors.set(a02, "closed");
    expect(b.events("alarm.forced_open").map((e) => e.compartment)).toEqual(["A02"]);
    expect(b.rt.technician.alarms()).toEqual([expect.objectContaining({ kind: "forced_open", compartment: "A02" })]);
    const first = await keypadDeposit(b, advance);
    expect(first.compartment).toBe("A03");
    b.rt.technician.setEnabled("A02", true, { user: "tech", reason: "checked: empty, lock fine" });
    expect(b.events("alarm.cleared").map((e) => [e.compartment, e.actor, e.data.alarm])).toEqual([["A02", "tech", "forced_open"]]);
    expect(b.rt.technician.alarms()).toEqual([]);
    const second = await keypadDeposit(b, advance);
    expect(second.compartment).toBe("A02");
  });

  it("flags a flapping door sensor once, and clears it after a quiet minute", async () => {
    const b = await open();
    const ch = b.rt.bank.layoutOf("B07").lock;
    for (let i = 0; i < 30; i++) {
      b.hw.doors.set(ch, i % 2 === 0 ? "open" : "closed");
      await advance(200);
    }
    expect(b.events("alarm.sensor_flapping").map((e) => [e.compartment, e.data.edges])).toEqual([["B07", 10]]);
    expect(b.rt.technician.alarms()).toEqual(expect.arrayContaining([expect.objectContaining({ kind: "sensor_flapping", compartment: "B07" })]));
    await advance(59_000);
    expect(b.events("alarm.cleared").filter((e) => e.data.alarm === "sensor_flapping")).toHaveLength(0);
    await advance(2_000);
    expect(b.events("alarm.cleared").filter((e) => e.data.alarm === "sensor_flapping").map((e) => e.compartment)).toEqual(["B07"]);
    expect(b.rt.technician.alarms().filter((a) => a.kind === "sensor_flapping")).toEqual([]);
  });
});
