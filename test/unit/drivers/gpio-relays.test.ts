// GPIO relays against the emulated pin bank on a fake Pi 4 sysfs tree (base 512): off at open,
// active-high and active-low per relay, a pulse's exact on/off times, and everything off at stop.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpioEmulator, PI4_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import { createGpioRelays, GpioRelaysConfig } from "../../../src/drivers/gpio/relays.js";
import type { LockPart } from "../../../src/drivers/parts.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";

const BASE = 512;
let root: string;
let gpio: GpioEmulator;
let relays: LockPart;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "lockerd-relays-"));
  await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
  vi.useFakeTimers({ now: 0 });
  gpio = new GpioEmulator();
  // channel 1 on an active-high relay, channels 2 and 3 on an active-low board (pin low = coil on)
  const config = GpioRelaysConfig.parse({
    type: "gpio-relays",
    sysfsRoot: root,
    activeLow: true,
    relays: [
      { channel: 1, pin: 17, activeLow: false },
      { channel: 2, pin: 27 },
      { channel: 3, pin: 22 },
    ],
  });
  relays = createGpioRelays(config, { log: silentLogger(), gpio });
  await relays.start();
});

afterEach(async () => {
  await relays.stop();
  vi.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

describe("gpio relays", () => {
  it("opens each relay pin as an output already at its off level", () => {
    expect(gpio.direction(BASE + 17)).toBe("low"); // active-high: off = low
    expect(gpio.direction(BASE + 27)).toBe("high"); // active-low: off = high
    expect([gpio.level(BASE + 17), gpio.level(BASE + 27), gpio.level(BASE + 22)]).toEqual([0, 1, 1]);
    expect(relays.channels).toEqual([1, 2, 3]);
    expect(relays.health()).toMatchObject({ kind: "locks", health: "ok" });
    expect(relays.health().detail).toContain("gpiochip512");
  });

  it("energizes an active-low relay by driving its pin low for exactly the pulse time", async () => {
    let done = false;
    const pulse = relays.pulse(2, 300).then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(gpio.level(BASE + 27)).toBe(0);
    await vi.advanceTimersByTimeAsync(299);
    expect(gpio.level(BASE + 27)).toBe(0);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await pulse;
    expect(gpio.level(BASE + 27)).toBe(1);
    // opened high at t=0, low at 0, high again at 300
    expect(gpio.writes(BASE + 27)).toEqual([
      { level: 1, at: 0 },
      { level: 0, at: 0 },
      { level: 1, at: 300 },
    ]);
    expect(gpio.level(BASE + 22)).toBe(1); // the neighbour never moved
  });

  it("energizes an active-high relay by driving its pin high", async () => {
    const pulse = relays.pulse(1, 100);
    await vi.advanceTimersByTimeAsync(50);
    expect(gpio.level(BASE + 17)).toBe(1);
    await vi.advanceTimersByTimeAsync(50);
    await pulse;
    expect(gpio.level(BASE + 17)).toBe(0);
  });

  it("runs a second pulse of the same lock after the first, not over it", async () => {
    const first = relays.pulse(2, 200);
    const second = relays.pulse(2, 200);
    await vi.advanceTimersByTimeAsync(400);
    await Promise.all([first, second]);
    const changes = gpio.writes(BASE + 27).map((w) => `${w.level}@${w.at}`);
    expect(changes).toEqual(["1@0", "0@0", "1@200", "0@200", "1@400"]);
  });

  it("rejects a channel it does not own", async () => {
    const e = await relays.pulse(9, 100).catch((err: unknown) => err);
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
  });

  it("stop mid-pulse leaves every relay off and unexported, and the pulse resolves", async () => {
    const pulse = relays.pulse(2, 1000);
    const other = relays.pulse(1, 1000);
    await vi.advanceTimersByTimeAsync(10);
    expect([gpio.level(BASE + 27), gpio.level(BASE + 17)]).toEqual([0, 1]);
    await relays.stop();
    await Promise.all([pulse, other]);
    expect([gpio.level(BASE + 17), gpio.level(BASE + 27), gpio.level(BASE + 22)]).toEqual([0, 1, 1]);
    for (const pin of [17, 27, 22]) expect(gpio.isExported(BASE + pin)).toBe(false);
    expect(relays.health().health).toBe("absent");
  });

  it("allOff drives every relay off", async () => {
    const pulse = relays.pulse(3, 500);
    await vi.advanceTimersByTimeAsync(1);
    expect(gpio.level(BASE + 22)).toBe(0);
    await relays.allOff();
    expect(gpio.level(BASE + 22)).toBe(1);
    await vi.advanceTimersByTimeAsync(500);
    await pulse;
  });
});

describe("gpio relays config", () => {
  it("rejects two relays on one pin and one channel twice", () => {
    const twice = GpioRelaysConfig.safeParse({
      type: "gpio-relays",
      relays: [
        { channel: 1, pin: 17 },
        { channel: 1, pin: 18 },
      ],
    });
    expect(twice.success).toBe(false);
    const samePin = GpioRelaysConfig.safeParse({
      type: "gpio-relays",
      relays: [
        { channel: 1, pin: 17 },
        { channel: 2, pin: 17 },
      ],
    });
    expect(samePin.success).toBe(false);
    expect(GpioRelaysConfig.safeParse({ type: "gpio-relays", relays: [{ channel: 1, pin: 17, extra: 1 }] }).success).toBe(false);
  });

  it("defaults to /sys and active-high", () => {
    const c = GpioRelaysConfig.parse({ type: "gpio-relays", relays: [{ channel: 0, pin: 5 }] });
    expect(c).toMatchObject({ sysfsRoot: "/sys", activeLow: false });
  });
});
