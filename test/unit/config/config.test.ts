import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatPath, loadConfig, parseConfig } from "../../../src/config/load.js";
import { compartmentIds, MAX_PULSE_MS, type Config } from "../../../src/config/schema.js";
import { ErrorCode, isLockerError, type LockerError } from "../../../src/errors.js";

const EXAMPLE = fileURLToPath(new URL("../../../config.example.json", import.meta.url));

// Loose on purpose: the tests poke wrong types into the raw JSON.
type Json = Record<string, any>;
const example = (): Json => JSON.parse(readFileSync(EXAMPLE, "utf8")) as Json;

/** The smallest valid config: everything else comes from defaults. */
const minimal = (): Json => ({
  version: 1,
  device: { site: "hq", id: "bank-01" },
  bank: { columns: [{ id: "A", compartments: [{ size: "S" }, { size: "M" }] }] },
  hardware: { profile: "sim" },
});

/** The LockerError(config) that parsing `raw` throws. Fails the test if it parses. */
function configError(fn: () => unknown): LockerError {
  try {
    fn();
  } catch (e) {
    expect(isLockerError(e, ErrorCode.Config)).toBe(true);
    return e as LockerError;
  }
  throw new Error("expected a config error, but it parsed");
}
const issuesOf = (raw: unknown): string[] => configError(() => parseConfig(raw)).context.issues as string[];

describe("config.example.json", () => {
  let cfg: Config;
  beforeEach(() => {
    cfg = loadConfig(EXAMPLE);
  });

  it("parses, and describes 2 columns of 12 compartments", () => {
    expect(cfg.version).toBe(1);
    expect(cfg.bank.columns.map((c) => c.id)).toEqual(["A", "B"]);
    for (const col of cfg.bank.columns) expect(col.compartments).toHaveLength(12);
  });

  it("has S/M/L roughly 50/30/20", () => {
    const layout = compartmentIds(cfg.bank.columns);
    const share = (size: string) => layout.filter((c) => c.size === size).length / layout.length;
    expect(share("S")).toBeCloseTo(0.5, 1);
    expect(Math.abs(share("M") - 0.3)).toBeLessThanOrEqual(0.05);
    expect(Math.abs(share("L") - 0.2)).toBeLessThanOrEqual(0.05);
    // Nothing but S, M and L in the example.
    expect(layout.every((c) => ["S", "M", "L"].includes(c.size))).toBe(true);
  });

  it("is the same after parseConfig as after loadConfig", () => {
    expect(parseConfig(example())).toEqual(cfg);
  });
});

describe("defaults", () => {
  it("fills every optional section and field", () => {
    const cfg = parseConfig(minimal());
    expect(cfg.hardware).toMatchObject({ profile: "sim", springOpen: true, openDelayMs: 40 });
    expect(cfg.locks).toEqual({ pulseMs: 300, maxConcurrent: 1, openVerifyMs: 2000, retries: 1 });
    expect(cfg.terminal).toEqual({ id: "keypad-1", idleTimeoutMs: 30_000, offerMs: 10_000, displayWidth: 20, displayLines: 4, messageMs: 4000 });
    expect(cfg.codes).toEqual({ length: 6 });
    expect(cfg.lockout).toEqual({
      threshold: 5,
      baseDelayMs: 30_000,
      maxDelayMs: 900_000,
      alarmThreshold: 20,
      alarmWindowMs: 3_600_000,
      decayMs: 300_000,
    });
    expect(cfg.policies).toEqual({ reminderHours: [24, 48], expiryHours: 72, temperatureReadS: 60, doorLeftOpenS: 60, offerLarger: true });
    expect(cfg.sync).toEqual({
      enabled: false,
      url: "mqtt://127.0.0.1:1883",
      topicPrefix: "lockers",
      clockSkewS: 120,
      maxCommandLifetimeS: 600,
      keepaliveS: 30,
      sessionExpiryS: 604800,
      window: 256,
      retentionDays: 30,
      telemetryS: 60,
      stateCoalesceMs: 250,
      reconnectBaseMs: 500,
      reconnectCapMs: 60000,
    });
    expect(cfg.seed).toEqual({ people: [] });
    expect(cfg.log).toEqual({ level: "info" });
    expect(cfg.bank.columns[0]!.compartments[0]).toEqual({ size: "S", refrigerated: false, accessible: false });
  });

  it("fills defaults inside a partly given section, keeping what was given", () => {
    const raw = { ...minimal(), locks: { pulseMs: 500 }, seed: { people: [{ id: "p", name: "P", roles: ["recipient"] }] } };
    const cfg = parseConfig(raw);
    expect(cfg.locks).toEqual({ pulseMs: 500, maxConcurrent: 1, openVerifyMs: 2000, retries: 1 });
    expect(cfg.seed.people[0]!.active).toBe(true);
  });

  it("does not modify the object it is given", () => {
    const raw = minimal();
    const before = structuredClone(raw);
    parseConfig(raw);
    expect(raw).toEqual(before);
  });
});

describe("errors", () => {
  it("an unknown key at the top level is an error naming it", () => {
    expect(issuesOf({ ...example(), colour: "red" })).toEqual(['(root): unknown key "colour"']);
  });

  it("an unknown key in a section is an error naming the path (a typo is never ignored)", () => {
    const raw = example();
    raw.locks.pulseMS = 300;
    expect(issuesOf(raw)).toEqual(['locks: unknown key "pulseMS"']);
  });

  it("an unknown key deep in the bank names the full path", () => {
    const raw = example();
    raw.bank.columns[1].compartments[3].heated = true;
    raw.bank.columns[1].compartments[3].colour = "red";
    expect(issuesOf(raw)).toEqual(['bank.columns[1].compartments[3]: unknown keys "heated", "colour"']);
  });

  it("reports every bad field, each by path with what was expected", () => {
    const raw = example();
    raw.version = 2;
    raw.device.site = "Head Office";
    raw.bank.columns[0].compartments[4].size = "XXL";
    raw.locks.pulseMs = 5000;
    raw.terminal.displayWidth = "20";
    raw.seed.people[0].pin = "12";
    raw.sync.url = "http://broker";
    raw.log.level = "verbose";
    raw.lockout.threshold = 0;
    const err = configError(() => parseConfig(raw, "lockerd.json"));
    const issues = err.context.issues as string[];
    expect(issues).toHaveLength(9);
    expect(err.message).toBe("lockerd.json: 9 invalid field(s)");
    const issue = (path: string) => {
      const found = issues.filter((i) => i.startsWith(`${path}: `));
      expect(found, `one issue for ${path} in ${JSON.stringify(issues)}`).toHaveLength(1);
      return found[0]!;
    };
    expect(issue("version")).toContain("1");
    expect(issue("device.site")).toMatch(/lowercase/);
    expect(issue("bank.columns[0].compartments[4].size")).toMatch(/"S".*"M".*"L".*"XL"/);
    expect(issue("locks.pulseMs")).toContain(String(MAX_PULSE_MS));
    expect(issue("terminal.displayWidth")).toMatch(/expected number/);
    expect(issue("seed.people[0].pin")).toMatch(/4-12 digits/);
    expect(issue("sync.url")).toMatch(/mqtt:\/\//);
    expect(issue("log.level")).toMatch(/info/);
    expect(issue("lockout.threshold")).toMatch(/1/);
  });

  it("reports value errors and cross-field errors together", () => {
    const raw = example();
    raw.locks.pulseMs = 5000;
    raw.bank.columns[1].id = "A";
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(2);
    expect(issues).toEqual(expect.arrayContaining([expect.stringMatching(/^locks\.pulseMs: /), "bank.columns[1].id: duplicate column A"]));
  });

  // zod skips refinements after a type error unless told otherwise (`when`): one pass must name all.
  it("reports a cross-field error alongside a type error", () => {
    const raw = example();
    raw.terminal.displayWidth = "20";
    raw.bank.columns[1].id = "A";
    const issues = issuesOf(raw);
    expect(issues).toContain("bank.columns[1].id: duplicate column A");
    expect(issues).toHaveLength(2);
  });

  it("rejects a pulse longer than MAX_PULSE_MS, accepts MAX_PULSE_MS itself", () => {
    const raw = example();
    raw.locks.pulseMs = MAX_PULSE_MS + 1;
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^locks\.pulseMs: .*2000/);
    raw.locks.pulseMs = MAX_PULSE_MS;
    expect(parseConfig(raw).locks.pulseMs).toBe(MAX_PULSE_MS);
  });

  it("rejects a fractional pulse", () => {
    const raw = example();
    raw.locks.pulseMs = 300.5;
    expect(issuesOf(raw)).toEqual([expect.stringMatching(/^locks\.pulseMs: /)]);
  });

  it("rejects duplicate column ids, naming the second", () => {
    const raw = example();
    raw.bank.columns[1].id = "A";
    expect(issuesOf(raw)).toEqual(["bank.columns[1].id: duplicate column A"]);
  });

  it("rejects duplicate seed PINs, naming the second person", () => {
    const raw = example();
    const firstPin = raw.seed.people[0].pin as string;
    raw.seed.people[1].pin = firstPin;
    expect(issuesOf(raw)).toEqual(["seed.people[1].pin: duplicate pin"]);
  });

  it("rejects duplicate badges regardless of case", () => {
    const raw = example();
    raw.seed.people[1].badge = (raw.seed.people[0].badge as string).toLowerCase();
    expect(issuesOf(raw)).toEqual(["seed.people[1].badge: duplicate badge"]);
  });

  it("rejects two compartments on one lock channel", () => {
    const raw = example();
    raw.bank.columns[0].compartments[0].lock = 13; // B02's default channel
    const issues = issuesOf(raw);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatch(/^bank: /);
    expect(issues[0]).toContain("A01");
    expect(issues[0]).toContain("B02");
  });

  it("rejects maxDelayMs below baseDelayMs", () => {
    const raw = example();
    raw.lockout.baseDelayMs = 60_000;
    raw.lockout.maxDelayMs = 30_000;
    expect(issuesOf(raw)).toEqual(["lockout.maxDelayMs: must be >= baseDelayMs"]);
  });

  it("rejects a config that is not an object at all", () => {
    expect(issuesOf(null)).toHaveLength(1);
    expect(issuesOf([])[0]).toMatch(/^\(root\): /);
  });
});

describe("loadConfig", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-config-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("a missing file is LockerError(config) naming the file", () => {
    const file = join(dir, "nope.json");
    const err = configError(() => loadConfig(file));
    expect(err.code).toBe("config");
    expect(err.message).toContain(file);
    expect(err.message).toContain("ENOENT");
    expect(err.context.issues).toEqual([`${file}: cannot be read`]);
  });

  it("invalid JSON is LockerError(config)", () => {
    const file = join(dir, "bad.json");
    writeFileSync(file, '{ "version": 1, ');
    const err = configError(() => loadConfig(file));
    expect(err.code).toBe("config");
    expect(err.message).toBe(`${file}: not valid JSON`);
    expect(err.context.issues).toEqual([expect.stringMatching(/^\(root\): /)]);
  });

  it("a valid file with bad fields names the file and lists the fields", () => {
    const file = join(dir, "lockerd.json");
    const raw = example();
    raw.locks.pulseMs = 9999;
    writeFileSync(file, JSON.stringify(raw));
    const err = configError(() => loadConfig(file));
    expect(err.message).toBe(`${file}: 1 invalid field(s)`);
    expect(err.context.issues).toEqual([expect.stringMatching(/^locks\.pulseMs: /)]);
  });
});

describe("compartmentIds", () => {
  it("names the example's compartments A01..A12, B01..B12 in bank order", () => {
    const layout = compartmentIds(loadConfig(EXAMPLE).bank.columns);
    const expected = [
      ...Array.from({ length: 12 }, (_, i) => `A${String(i + 1).padStart(2, "0")}`),
      ...Array.from({ length: 12 }, (_, i) => `B${String(i + 1).padStart(2, "0")}`),
    ];
    expect(layout.map((c) => c.id)).toEqual(expected);
    expect(layout[0]).toMatchObject({ id: "A01", column: "A", row: 1, lock: 0, accessible: true, keypadNumber: "101" });
  });

  it("gives the keypad number column-then-row: A07 = 107, B01 = 201, B12 = 212", () => {
    const layout = compartmentIds(loadConfig(EXAMPLE).bank.columns);
    const byId = new Map(layout.map((c) => [c.id, c]));
    expect(byId.get("A07")?.keypadNumber).toBe("107");
    expect(byId.get("B01")?.keypadNumber).toBe("201");
    expect(byId.get("B12")?.keypadNumber).toBe("212");
    expect(new Set(layout.map((c) => c.keypadNumber)).size).toBe(layout.length);
  });

  it("defaults the lock channel to the position in the bank, and keeps an explicit one", () => {
    const raw = example();
    raw.bank.columns[1].compartments[0].lock = 500;
    const layout = compartmentIds(parseConfig(raw).bank.columns);
    expect(layout.map((c) => c.lock)).toEqual([...Array.from({ length: 12 }, (_, i) => i), 500, ...Array.from({ length: 11 }, (_, i) => 13 + i)]);
  });

  it("carries size and flags through", () => {
    const raw = example();
    raw.bank.columns[1].compartments[10].refrigerated = true;
    const b11 = compartmentIds(parseConfig(raw).bank.columns).find((c) => c.id === "B11");
    expect(b11).toMatchObject({ size: "L", refrigerated: true, accessible: false, column: "B", row: 11 });
  });
});

describe("formatPath", () => {
  it("joins keys with dots and indexes with brackets", () => {
    expect(formatPath(["bank", "columns", 0, "compartments", 3, "size"])).toBe("bank.columns[0].compartments[3].size");
    expect(formatPath([])).toBe("(root)");
  });
});
