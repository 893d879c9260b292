// The HD44780 LCD driver against an HD44780 model decoded from the PCF8574 backpack's pin bytes:
// the exact 4-bit init sequence and its waits, what the screen shows, that only changed
// characters are rewritten, and that a display that goes away is degraded, never an exception.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Hd44780Emulator } from "../../../src/drivers/display/emulator.js";
import { DEFAULT_BACKPACK_PINS, fitLine } from "../../../src/drivers/display/hd44780.js";
import { createLcd, LcdConfig, POWER_ON_WAIT_MS, type LcdPart } from "../../../src/drivers/display/lcd.js";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { PROBE_BACKOFF, RETRY_BACKOFF } from "../../../src/drivers/i2c/link.js";
import { silentLogger } from "../../../src/log.js";

const ADDR = 0x27;
const INIT_MS = POWER_ON_WAIT_MS + 5 + 1 + 1 + 1 + 2; // the waits of the init sequence
let bus: I2cBusEmulator;
let emu: Hd44780Emulator;
let lcd: LcdPart;
let events: string[];

function make(config: Record<string, unknown> = {}): LcdPart {
  lcd = createLcd(LcdConfig.parse({ type: "hd44780-i2c", ...config }), { log: silentLogger(), openBus: bus.opener(), random: () => 0 });
  events = [];
  lcd.on("fault", () => events.push("fault"));
  lcd.on("recovered", () => events.push("recovered"));
  return lcd;
}

async function start(): Promise<void> {
  const started = lcd.start();
  await vi.advanceTimersByTimeAsync(INIT_MS + 10 * RETRY_BACKOFF.baseMs);
  await started;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  bus = new I2cBusEmulator();
  emu = new Hd44780Emulator({ cols: 20, rows: 4 });
  bus.attach(ADDR, emu.backpack);
});

afterEach(async () => {
  await lcd.stop();
  vi.useRealTimers();
});

describe("hd44780 lcd init", () => {
  it("sends 0x3 three times with the datasheet's waits, 0x2, then 0x28 0x0C 0x01 0x06", async () => {
    make();
    await start();
    // in 8-bit mode each nibble is a whole instruction (D0-D3 unwired): 0x30 0x30 0x30 0x20
    expect(emu.instructions.map((i) => i.value)).toEqual([0x30, 0x30, 0x30, 0x20, 0x28, 0x0c, 0x01, 0x06]);
    expect(emu.instructions.every((i) => i.rs === 0)).toBe(true);
    const at = emu.nibbles.map((n) => n.at);
    expect(at[0]).toBeGreaterThanOrEqual(40); // > 40 ms after power-on
    expect(at[1]! - at[0]!).toBeGreaterThan(4.1);
    expect(at[2]! - at[1]!).toBeGreaterThan(0.1);
    expect(emu.violations).toEqual([]);
    expect(emu.fourBit).toBe(true);
    expect(emu.twoLines).toBe(true);
    expect(emu.displayOn).toBe(true);
    expect(emu.backlight).toBe(true);
    expect(emu.screen()).toEqual(Array(4).fill(" ".repeat(20)));
    expect(lcd.health()).toMatchObject({ kind: "display", health: "ok", name: "lcd 20x4 i2c-1@0x27" });
  });

  it("clocks each nibble as setup, E high, E low on the backpack", async () => {
    make();
    await start();
    // first nibble 0x3: D4, D5 set (P4, P5), backlight P3, E = P2 only in the middle byte
    expect(emu.backpack.writes.slice(0, 3)).toEqual([0b0011_1000, 0b0011_1100, 0b0011_1000]);
  });
});

describe("hd44780 lcd show", () => {
  beforeEach(async () => {
    make();
    await start();
  });

  it("shows lines padded and cut to the width, blank rows for missing lines", async () => {
    lcd.show(["Parcel locker", "Enter your pickup code please", "Zürich \\ 1"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(emu.screen()).toEqual(["Parcel locker       ", "Enter your pickup co", "Z?rich ? 1          ", " ".repeat(20)]);
    expect(emu.violations).toEqual([]);
  });

  it("rewrites only the changed characters, and nothing for the same lines", async () => {
    lcd.show(["Door A07 open", "Close it, please"]);
    await vi.advanceTimersByTimeAsync(0);
    const before = emu.dataWrites;
    lcd.show(["Door A08 open", "Close it, please"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(emu.dataWrites - before).toBe(1); // "7" → "8"
    expect(emu.screen().slice(0, 2)).toEqual([fitLine("Door A08 open", 20), fitLine("Close it, please", 20)]);
    const transactions = bus.transactions.length;
    lcd.show(["Door A08 open", "Close it, please"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(bus.transactions.length).toBe(transactions);
  });

  it("lands rows 3 and 4 at DDRAM 0x14 and 0x54", async () => {
    lcd.show(["", "", "third", "fourth"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(String.fromCharCode(...emu.ddram.subarray(0x14, 0x19))).toBe("third");
    expect(String.fromCharCode(...emu.ddram.subarray(0x54, 0x5a))).toBe("fourth");
  });

  it("coalesces a burst of show() calls into the last one", async () => {
    for (let i = 0; i < 10; i++) lcd.show([`count ${i}`]);
    await vi.advanceTimersByTimeAsync(0);
    expect(emu.screen()[0]).toBe(fitLine("count 9", 20));
  });
});

describe("hd44780 lcd geometry and wiring", () => {
  it("drives a 16x2 on a backpack wired differently", async () => {
    const pins = { d4: 0, d5: 1, d6: 2, d7: 3, rs: 4, rw: 5, e: 6, backlight: 7 };
    emu = new Hd44780Emulator({ cols: 16, rows: 2 }, pins);
    bus.attach(ADDR, emu.backpack);
    make({ cols: 16, rows: 2, pins });
    await start();
    lcd.show(["0123456789ABCDEFGH", "ok"]);
    await vi.advanceTimersByTimeAsync(0);
    expect(emu.screen()).toEqual(["0123456789ABCDEF", "ok              "]);
    expect(emu.violations).toEqual([]);
  });

  it("rejects a backpack mapping with a bit used twice", () => {
    expect(LcdConfig.safeParse({ type: "hd44780-i2c", pins: { ...DEFAULT_BACKPACK_PINS, e: 0 } }).success).toBe(false);
    expect(LcdConfig.safeParse({ type: "hd44780-i2c", cols: 24 }).success).toBe(false);
  });
});

describe("hd44780 lcd faults", () => {
  it("never throws when the display goes away; redraws it after a power cycle", async () => {
    make();
    await start();
    lcd.show(["Welcome"]);
    await vi.advanceTimersByTimeAsync(0);
    bus.detach(ADDR);
    expect(() => lcd.show(["Door A01 open"])).not.toThrow();
    await vi.advanceTimersByTimeAsync(10 * RETRY_BACKOFF.baseMs);
    expect(events).toEqual(["fault"]);
    expect(lcd.health().health).toBe("degraded");
    expect(() => lcd.show(["Door A02 open", "bye"])).not.toThrow();
    emu.powerCycle(); // back in 8-bit mode, DDRAM blank
    bus.attach(ADDR, emu.backpack);
    await vi.advanceTimersByTimeAsync(PROBE_BACKOFF.baseMs / 2 + INIT_MS);
    expect(events).toEqual(["fault", "recovered"]);
    expect(lcd.health().health).toBe("ok");
    expect(emu.screen().slice(0, 2)).toEqual([fitLine("Door A02 open", 20), fitLine("bye", 20)]);
    expect(emu.violations).toEqual([]);
  });

  it("starts degraded when the backpack is absent and shows the latest lines once it appears", async () => {
    bus.detach(ADDR);
    make();
    await start();
    expect(lcd.health().health).toBe("degraded");
    lcd.show(["Out of service"]);
    bus.attach(ADDR, emu.backpack);
    await vi.advanceTimersByTimeAsync(PROBE_BACKOFF.baseMs / 2 + INIT_MS);
    expect(emu.screen()[0]).toBe(fitLine("Out of service", 20));
    expect(events).toEqual(["fault", "recovered"]);
  });
});
