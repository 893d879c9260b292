// SIGHUP's half in the running bank (Runtime.reload): a layout applied live reaches the bank, the
// keypad's menu (between sessions only) and the simulated hardware; a door being opened counts as
// in use; a hardware change defers the layout; what needs a restart is named. In-process bank on
// the simulated hardware, fake timers.
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/load.js";
import type { Config } from "../../../src/config/schema.js";
import { fakeClockBanks } from "../../helpers/bank.js";
import { exampleConfig } from "../../helpers/daemon.js";

const { open, advance } = fakeClockBanks();

/** The config testBank runs with, patched: what the operator's file says after an edit. */
function edited(patch: (cfg: Record<string, any>) => void): Config {
  const raw = exampleConfig() as Record<string, any>;
  raw.locks = { ...raw.locks, pulseMs: 100, openVerifyMs: 500 };
  patch(raw);
  return parseConfig(raw);
}

const withXl = (cfg: Record<string, any>) => cfg.bank.columns.push({ id: "C", compartments: [{ size: "XL", lock: 40 }] });

describe("a server resize across restarts (three-way rule)", () => {
  it("is kept while the config says what it said; a size the config changes later replaces it", async () => {
    let b = await open();
    b.rt.ledger.transact((tx) => b.rt.remote.setCompartment(tx, { compartment: "A05", size: "L", reason: "shelf removed" }));
    await b.rt.stop();
    b = await open(undefined, b.dir); // the same config: the server's L stays
    expect(b.rt.ledger.compartment("A05")?.size).toBe("L");
    expect(b.rt.bank.layoutOf("A05").size).toBe("L");
    expect(b.events("compartment.changed")).toEqual([]);
    await b.rt.stop();
    b = await open((cfg) => (cfg.bank.columns[0].compartments[4].size = "M"), b.dir); // the config now says M
    expect(b.rt.ledger.compartment("A05")?.size).toBe("M");
    expect(b.events("compartment.changed").map((e) => [e.compartment, e.data])).toEqual([["A05", { from: { size: "L" }, to: { size: "M" } }]]);
  });
});

describe("Runtime.reload (SIGHUP)", () => {
  it("adds a compartment to the running bank: served, on the simulated hardware, offered at the keypad once the session ends", async () => {
    const b = await open();
    b.hw.keypad.keys("*2468#"); // a courier at the size menu
    expect(b.screen()).not.toContain("XL");
    const report = b.rt.reload(edited(withXl));
    expect(report).toMatchObject({ layout: "applied", restart: [] });
    expect(report.plan.added.map((a) => a.id)).toEqual(["C01"]);
    expect(b.rt.bank.layoutOf("C01")).toMatchObject({ lock: 40, size: "XL" });
    expect(b.events("compartment.added").map((e) => e.compartment)).toContain("C01");
    expect(b.hw.doors.read(40)).toBe("closed");
    b.hw.keypad.keys("#"); // the menu drawn again in the same session: unchanged under the courier's finger
    expect(b.screen()).toMatch(/Parcel size\?.*1=S 2=M 3=L/);
    expect(b.screen()).not.toContain("XL");
    b.hw.keypad.keys("*"); // done
    await advance(1000);
    b.hw.keypad.keys("*2468#");
    expect(b.screen()).toContain("4=XL");
    b.hw.keypad.keys("4");
    expect(b.rt.ledger.compartment("C01")).toMatchObject({ state: "loading" });
  });

  it("refuses a change to a compartment whose door is being opened right now, and applies it once it is not", async () => {
    const b = await open();
    const opening = b.rt.technician.open("A05", { user: "tech", reason: "check" });
    const resized = edited((cfg) => (cfg.bank.columns[0].compartments[4].size = "M"));
    const refused = b.rt.reload(resized);
    expect(refused.layout).toBe("refused");
    expect(refused.plan.refused).toEqual([expect.objectContaining({ id: "A05", parcel: null })]);
    expect(refused.plan.refused[0]!.detail).toMatch(/door being opened right now/);
    expect(b.rt.ledger.compartment("A05")?.size).toBe("S");
    await advance(1000);
    await opening;
    b.hw.doors.set(b.rt.bank.layoutOf("A05").lock, "closed");
    expect(b.rt.reload(resized).layout).toBe("applied");
    expect(b.rt.ledger.compartment("A05")?.size).toBe("M");
  });

  it("defers the layout when the hardware section changed too, and names every change that needs a restart", async () => {
    const b = await open();
    const report = b.rt.reload(
      edited((cfg) => {
        cfg.bank.columns[1].compartments.pop(); // B12
        cfg.bank.columns[1].compartments[0].temperature = { minC: 1, maxC: 6 };
        cfg.hardware.openDelayMs = 80;
        cfg.sync.retentionDays = 7;
      }),
    );
    expect(report.layout).toBe("deferred");
    expect(report.restart).toEqual(["hardware.openDelayMs", "sync.retentionDays", "bank.columns: temperature sensor of B01"]);
    expect(report.plan.retired.map((r) => r.id)).toEqual(["B12"]);
    expect(b.rt.bank.layoutOf("B12")).toBeDefined();
    expect(b.rt.ledger.compartment("B12")?.retiredAt).toBeNull();
  });
});
