// Buzzer and LED on the emulated pin bank: each pattern plays as its on/off steps, the LED follows
// the buzzer, a new pattern cuts the old one short, and stop always leaves both off.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BUZZER_PATTERNS, createGpioBuzzer, GpioBuzzerConfig } from "../../../src/drivers/gpio/buzzer.js";
import { GpioEmulator, PI4_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import type { BuzzerPart } from "../../../src/drivers/parts.js";
import { silentLogger } from "../../../src/log.js";

const BUZZER = 512 + 18;
const LED = 512 + 23;
let root: string;
let gpio: GpioEmulator;
let buzzer: BuzzerPart;

/** Level changes after opening, as "level@ms". */
const timeline = (n: number) =>
  gpio
    .writes(n)
    .slice(1)
    .map((w) => `${w.level}@${w.at}`);

beforeEach(async () => {
  vi.useFakeTimers({ now: 0 });
  root = await mkdtemp(join(tmpdir(), "lockerd-buzzer-"));
  await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
  gpio = new GpioEmulator();
  // a buzzer on a transistor (active-high) and an LED sunk by the pin (active-low)
  const config = GpioBuzzerConfig.parse({ type: "gpio-buzzer", sysfsRoot: root, buzzer: { pin: 18 }, led: { pin: 23, activeLow: true } });
  buzzer = createGpioBuzzer(config, { log: silentLogger(), gpio });
  await buzzer.start();
});

afterEach(async () => {
  await buzzer.stop();
  vi.useRealTimers();
  await rm(root, { recursive: true, force: true });
});

describe("gpio buzzer", () => {
  it("starts silent and dark", () => {
    expect(gpio.level(BUZZER)).toBe(0);
    expect(gpio.level(LED)).toBe(1);
  });

  it("plays every pattern as its on/off steps and ends off", async () => {
    for (const pattern of ["key", "ok", "error", "alarm"] as const) {
      const steps = BUZZER_PATTERNS[pattern];
      expect(steps.length % 2).toBe(1); // ends on an "on" step, then off
      const start = Date.now();
      const before = gpio.writes(BUZZER).length;
      buzzer.sound(pattern);
      const total = steps.reduce((a, b) => a + b, 0);
      await vi.advanceTimersByTimeAsync(total + 10);
      // each step boundary toggles the buzzer: on at start, then at every cumulative sum
      let t = start;
      const expected = [`1@${t}`];
      steps.forEach((ms, i) => expected.push(`${i % 2 === 0 ? 0 : 1}@${(t += ms)}`));
      const got = gpio.writes(BUZZER).slice(before).map((w) => `${w.level}@${w.at}`);
      expect(got, pattern).toEqual(expected);
      expect(gpio.level(BUZZER)).toBe(0);
      expect(gpio.level(LED)).toBe(1);
    }
  });

  it("blinks the LED with the buzzer, inverted for an active-low LED", async () => {
    buzzer.sound("error"); // 250 on, 100 off, 250 on
    await vi.advanceTimersByTimeAsync(700);
    expect(timeline(BUZZER)).toEqual(["1@0", "0@250", "1@350", "0@600"]);
    expect(timeline(LED)).toEqual(["0@0", "1@250", "0@350", "1@600"]);
  });

  it("cuts a long pattern short for a new one", async () => {
    buzzer.sound("alarm");
    await vi.advanceTimersByTimeAsync(100);
    buzzer.sound("key"); // 30 ms
    await vi.advanceTimersByTimeAsync(5000);
    expect(timeline(BUZZER)).toEqual(["1@0", "1@100", "0@130"]);
    expect(gpio.level(BUZZER)).toBe(0);
  });

  it("never leaves the buzzer on at stop, even mid-pattern", async () => {
    buzzer.sound("alarm");
    await vi.advanceTimersByTimeAsync(50);
    expect(gpio.level(BUZZER)).toBe(1);
    await buzzer.stop();
    expect(gpio.level(BUZZER)).toBe(0);
    expect(gpio.level(LED)).toBe(1);
    expect(gpio.isExported(BUZZER)).toBe(false);
    const writes = gpio.writes(BUZZER).length;
    await vi.advanceTimersByTimeAsync(5000);
    expect(gpio.writes(BUZZER).length).toBe(writes);
    buzzer.sound("ok"); // stopped: a no-op, not a throw
    expect(gpio.level(BUZZER)).toBe(0);
  });

  it("needs a buzzer or an LED on distinct pins", () => {
    expect(GpioBuzzerConfig.safeParse({ type: "gpio-buzzer" }).success).toBe(false);
    expect(GpioBuzzerConfig.safeParse({ type: "gpio-buzzer", buzzer: { pin: 4 }, led: { pin: 4 } }).success).toBe(false);
    expect(GpioBuzzerConfig.safeParse({ type: "gpio-buzzer", led: { pin: 4 } }).success).toBe(true);
  });
});
