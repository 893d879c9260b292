// config/checks.ts and the schema's sensor rules: what check-config reports beyond the schema, the
// channel map, and the differences SIGHUP names as needing a restart.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { channelMap, configDifferences, sensorWarnings, temperatureDifferences } from "../../../src/config/checks.js";
import { loadConfig, parseConfig } from "../../../src/config/load.js";
import { exampleConfig, ROOT } from "../../helpers/daemon.js";

const example = () => exampleConfig() as Record<string, any>;
const issuesOf = (raw: unknown): string[] => {
  try {
    parseConfig(raw);
    return [];
  } catch (e) {
    return (e as { context: { issues: string[] } }).context.issues;
  }
};
const kerong = () => loadConfig(join(ROOT, "hardware/profiles/c-kerong-rs485.json"));

describe("sensorWarnings", () => {
  it("warns of a refrigerated compartment nobody watches, not of one with its sensor", () => {
    const raw = example();
    expect(sensorWarnings(parseConfig(raw))).toEqual([]); // B01: refrigerated, bounds, simulated sensor
    raw.bank.columns[0].compartments[2].refrigerated = true;
    expect(sensorWarnings(parseConfig(raw))).toEqual([expect.stringMatching(/^A03 is refrigerated but has no temperature sensor/)]);
  });

  it("on a real bank, wants a thermometer naming a refrigerated compartment with bounds", () => {
    const raw = JSON.parse(JSON.stringify(kerong())) as Record<string, any>;
    raw.bank.columns[0].compartments[0] = { size: "S", refrigerated: true, temperature: { minC: 2, maxC: 8 } };
    expect(sensorWarnings(parseConfig(raw))).toEqual([expect.stringMatching(/^A01 is refrigerated with temperature bounds but no sensor/)]);
    raw.hardware.thermometers = [{ type: "sht3x", compartment: "A01" }];
    expect(sensorWarnings(parseConfig(raw))).toEqual([]);
  });
});

describe("the schema's sensor rules (the reverse: a sensor for no refrigerated compartment)", () => {
  it("refuses a thermometer for a compartment that is not in the bank, not refrigerated, or has no bounds", () => {
    const raw = JSON.parse(JSON.stringify(kerong())) as Record<string, any>;
    raw.bank.columns[0].compartments[0] = { size: "S", refrigerated: true };
    raw.hardware.thermometers = [
      { type: "sht3x", compartment: "Z09" },
      { type: "sht3x", compartment: "A02", address: 0x45 },
      { type: "sht3x", compartment: "A01", bus: 3 },
    ];
    expect(issuesOf(raw)).toEqual([
      "hardware.thermometers[0].compartment: no compartment Z09 in bank.columns: remove the sensor, or name the compartment it sits in",
      "hardware.thermometers[1].compartment: A02 is not refrigerated: a temperature sensor belongs in a refrigerated compartment",
      "hardware.thermometers[2].compartment: A01 has no temperature bounds (temperature.minC / maxC): its readings would never be checked",
    ]);
  });
});

describe("channelMap", () => {
  it("maps each compartment to its lock channel; on a real bank to the boards and where on them", () => {
    expect(channelMap(parseConfig(example())).slice(0, 2)).toEqual([
      { compartment: "A01", lock: 0 },
      { compartment: "A02", lock: 1 },
    ]);
    const rs485 = channelMap(kerong());
    expect(rs485.find((r) => r.lock === 16)).toMatchObject({ lockBoard: expect.stringMatching(/^boards\[0\] kerong .* address 1 lock 1$/), itemBoard: "boards[0] kerong" });
    const gpio = channelMap(loadConfig(join(ROOT, "hardware/profiles/a-gpio-16-relays.json")));
    expect(gpio.find((r) => r.compartment === "B01")).toEqual({ compartment: "B01", lock: 8, lockBoard: "boards[0] gpio-relays GPIO 19", doorBoard: "boards[2] pcf8574 bus 1 0x21 door input bit 0" });
  });
});

describe("configDifferences / temperatureDifferences", () => {
  it("lists the dotted paths that differ, arrays as one value, leaving out what it is told to skip", () => {
    const a = parseConfig(example());
    const raw = example();
    raw.locks.pulseMs = 250;
    raw.seed.people.pop();
    raw.bank.columns[0].compartments[1].size = "M";
    raw.bank.columns[1].compartments[0].temperature = { minC: 1, maxC: 7 };
    const b = parseConfig(raw);
    expect(configDifferences(a, b, ["bank.columns"])).toEqual(["locks.pulseMs", "seed.people"]);
    expect(configDifferences(a, a)).toEqual([]);
    expect(temperatureDifferences(a, b)).toEqual(["B01"]);
  });
});
