// The hardware profiles shipped in hardware/profiles/ are valid configs, and the config refuses a
// real profile that leaves a compartment's lock undriven, its door unsensed, or drives it twice.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../src/config/load.js";
import { compartmentIds } from "../../../src/config/schema.js";
import { ROOT } from "../../helpers/daemon.js";

const DIR = join(ROOT, "hardware/profiles");
const load = (f: string) => JSON.parse(readFileSync(join(DIR, f), "utf8")) as Record<string, any>;
const issues = (raw: unknown): string[] => {
  try {
    parseConfig(raw);
    return [];
  } catch (e) {
    return ((e as { context?: { issues?: string[] } }).context?.issues ?? [String(e)]) as string[];
  }
};

describe("hardware profiles", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".json"));

  it("ships the three profiles of the issue", () => {
    expect(files.sort()).toEqual(["a-gpio-16-relays.json", "b-two-mcp23017.json", "c-kerong-rs485.json"]);
  });

  it.each(files)("%s parses, and every compartment's lock is driven and sensed", (f) => {
    const cfg = parseConfig(load(f));
    expect(cfg.hardware.profile).toBe("real");
    expect(compartmentIds(cfg.bank.columns).length).toBeGreaterThanOrEqual(16);
  });

  it("a real bank carries no demo people: seed.people with the real profile is refused, naming the way", () => {
    const raw = load("a-gpio-16-relays.json");
    expect(issues(raw)).toEqual([]);
    const example = JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as Record<string, any>;
    raw.seed = example.seed;
    expect(issues(raw)).toEqual([expect.stringMatching(/^seed\.people: .*simulated bank only.*lockerctl people add/)]);
  });

  it("the Kerong profile has 32 locks with item sensors on two boards", () => {
    const cfg = parseConfig(load("c-kerong-rs485.json"));
    expect(compartmentIds(cfg.bank.columns)).toHaveLength(32);
    const hw = cfg.hardware;
    if (hw.profile !== "real") throw new Error("not real");
    const b = hw.boards[0]!;
    expect(b.type === "kerong" && b.boards.map((x) => [x.address, x.firstChannel, x.channels, x.itemSensors])).toEqual([
      [0, 0, 16, true],
      [1, 16, 16, true],
    ]);
  });

  it("refuses a compartment no board drives or senses, and one driven twice", () => {
    const raw = load("b-two-mcp23017.json");
    raw.hardware.boards[1].relays.channels = [8, 9, 10, 11, 12, 13, 14, 7]; // 15 undriven, 7 twice
    raw.hardware.boards[1].doors.channels = [8, 9, 10, 11, 12, 13, 14];
    const found = issues(raw);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringContaining("B08 (lock 15): no board drives its lock"),
        expect.stringContaining("A08 (lock 7) is driven by boards 0 and 1"),
        expect.stringContaining("B08 (lock 15): no board senses its door"),
      ]),
    );
  });
});
