// GPIO door inputs against the emulated pin bank on a fake Pi 5 sysfs tree (base 571): a bouncing
// contact gives one change after it settles, a glitch shorter than the debounce gives none, and a
// missed edge is caught by the reconciliation read.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpioEmulator, PI5_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import { createGpioDoors, GpioDoorsConfig } from "../../../src/drivers/gpio/doors.js";
import type { DoorPart } from "../../../src/drivers/parts.js";
import type { DoorState } from "../../../src/drivers/types.js";
import { createLogger } from "../../../src/log.js";

const BASE = 571;
const DEBOUNCE = 30;
const RECONCILE = 1000;
let root: string;
let gpio: GpioEmulator;
let doors: DoorPart;
let changes: [number, DoorState][];
let logLines: string[];

beforeEach(async () => {
  vi.useFakeTimers({ now: 0 });
  root = await mkdtemp(join(tmpdir(), "lockerd-doors-"));
  await writeFakeSysfs(root, PI5_BOOKWORM_CHIPS);
  gpio = new GpioEmulator();
  // doors 1 and 2: switch to GND with pull-up (low = closed); door 3 wired the other way round
  gpio.drive(BASE + 5, 0);
  gpio.drive(BASE + 6, 1);
  gpio.drive(BASE + 13, 1);
  const config = GpioDoorsConfig.parse({
    type: "gpio-doors",
    sysfsRoot: root,
    debounceMs: DEBOUNCE,
    reconcileMs: RECONCILE,
    doors: [
      { channel: 1, pin: 5 },
      { channel: 2, pin: 6 },
      { channel: 3, pin: 13, activeLow: false },
    ],
  });
  logLines = [];
  const log = createLogger("warn", { write: (s: string) => void logLines.push(s) });
  doors = createGpioDoors(config, { log, gpio });
  changes = [];
  doors.on("change", (channel, state) => changes.push([channel, state]));
  await doors.start();
});

afterEach(async () => {
  await doors.stop();
  vi.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

describe("gpio doors", () => {
  it("an input that cannot be read: faulted, one error however many reconciliation reads fail, and a note when it reads again", async () => {
    gpio.setExported(BASE + 6, false); // another process took the line
    await vi.advanceTimersByTimeAsync(RECONCILE * 5);
    expect(doors.health()).toMatchObject({ health: "faulted", detail: expect.stringMatching(/^GPIO 6: /) });
    expect(logLines.filter((l) => l.includes("door input read failed"))).toHaveLength(1);
    gpio.setExported(BASE + 6, true);
    await vi.advanceTimersByTimeAsync(RECONCILE);
    expect(doors.health().health).toBe("ok");
    expect(doors.read(2)).toBe("open");
  });

  it("reads the initial states at start without reporting them as changes", () => {
    expect([doors.read(1), doors.read(2), doors.read(3)]).toEqual(["closed", "open", "closed"]);
    expect(doors.read(99)).toBe("unknown");
    expect(changes).toEqual([]);
    expect(gpio.edge(BASE + 5)).toBe("both");
    expect(doors.health()).toMatchObject({ kind: "doors", health: "ok" });
  });

  it("reports one change for a bouncing contact, debounceMs after the last bounce", async () => {
    // closed (low) → open (high) with 5 edges 2 ms apart: the last edge lands at t = 8 ms
    const bounce = gpio.bounce(BASE + 5, 1, { edges: 5, everyMs: 2 });
    await vi.advanceTimersByTimeAsync(8 + DEBOUNCE - 1);
    expect(changes).toEqual([]);
    expect(doors.read(1)).toBe("closed");
    await vi.advanceTimersByTimeAsync(1);
    await bounce;
    expect(changes).toEqual([[1, "open"]]);
    expect(doors.read(1)).toBe("open");
    await vi.advanceTimersByTimeAsync(RECONCILE * 2);
    expect(changes).toEqual([[1, "open"]]);
  });

  it("ignores a glitch shorter than the debounce time", async () => {
    gpio.drive(BASE + 6, 0);
    await vi.advanceTimersByTimeAsync(DEBOUNCE - 10);
    gpio.drive(BASE + 6, 1);
    await vi.advanceTimersByTimeAsync(DEBOUNCE * 3);
    expect(changes).toEqual([]);
    expect(doors.read(2)).toBe("open");
  });

  it("honours a door wired active-high", async () => {
    gpio.drive(BASE + 13, 0);
    await vi.advanceTimersByTimeAsync(DEBOUNCE);
    expect(changes).toEqual([[3, "open"]]);
  });

  it("corrects a missed edge at the next reconciliation read, once, with a warning", async () => {
    gpio.setSilently(BASE + 5, 1); // door 1 opened, the interrupt was lost
    await vi.advanceTimersByTimeAsync(RECONCILE - 1);
    expect(changes).toEqual([]);
    await vi.advanceTimersByTimeAsync(1 + DEBOUNCE);
    expect(changes).toEqual([[1, "open"]]);
    expect(logLines.some((l) => l.includes("door edge missed"))).toBe(true);
    await vi.advanceTimersByTimeAsync(RECONCILE * 3);
    expect(changes).toEqual([[1, "open"]]);
  });

  it("releases the inputs at stop and reports nothing after", async () => {
    await doors.stop();
    for (const pin of [5, 6, 13]) expect(gpio.isExported(BASE + pin)).toBe(false);
    gpio.drive(BASE + 5, 1);
    await vi.advanceTimersByTimeAsync(RECONCILE * 2);
    expect(changes).toEqual([]);
  });
});

describe("gpio doors config", () => {
  it("defaults to a 30 ms debounce, a 1 s reconciliation and closed-when-low", () => {
    const c = GpioDoorsConfig.parse({ type: "gpio-doors", doors: [{ channel: 4, pin: 26 }] });
    expect(c).toMatchObject({ debounceMs: 30, reconcileMs: 1000, activeLow: true, sysfsRoot: "/sys" });
    expect(GpioDoorsConfig.safeParse({ type: "gpio-doors", debounceMs: 5000, doors: [{ channel: 4, pin: 26 }] }).success).toBe(false);
  });
});
