// PCF8574 / PCF8574A boards against the quasi-bidirectional chip model: input bits are always
// written 1 (or they could not be read), active-low relays, door inputs, faults and recovery.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { Pcf8574Model } from "../../../src/drivers/i2c/emulator/pcf8574.js";
import type { ExpanderBoard } from "../../../src/drivers/i2c/expander.js";
import { PROBE_BACKOFF, RETRY_BACKOFF } from "../../../src/drivers/i2c/link.js";
import { createPcf8574, Pcf8574Config } from "../../../src/drivers/i2c/pcf8574.js";
import type { DoorState } from "../../../src/drivers/types.js";
import { silentLogger } from "../../../src/log.js";

let bus: I2cBusEmulator;
let chip: Pcf8574Model;
let board: ExpanderBoard;
let changes: [number, DoorState][];

// relays (active-low) on P0-P3, doors on P4-P7 in the order the harness happens to be wired
const MIXED = {
  relays: { channels: [0, 1, 2, 3].map((bit) => ({ channel: 21 + bit, bit })) },
  doors: {
    channels: [
      { channel: 21, bit: 7 },
      { channel: 22, bit: 6 },
      { channel: 23, bit: 5 },
      { channel: 24, bit: 4 },
    ],
  },
};

function make(address: number, config: Record<string, unknown>): ExpanderBoard {
  board = createPcf8574(Pcf8574Config.parse({ type: "pcf8574", address, ...config }), { log: silentLogger(), openBus: bus.opener(), random: () => 0 });
  changes = [];
  board.doors?.on("change", (channel, state) => changes.push([channel, state]));
  return board;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  bus = new I2cBusEmulator();
  chip = new Pcf8574Model();
});

afterEach(async () => {
  await board.stop();
  vi.useRealTimers();
});

describe("pcf8574", () => {
  it("writes relays off (high) and every input bit 1 at start, and reads the doors", async () => {
    bus.attach(0x27, chip);
    chip.setPin(7, 0); // door 21 closed
    await make(0x27, MIXED).start();
    expect(chip.writes[0]).toBe(0xff); // active-low relays off = 1, inputs = 1
    expect(chip.latch).toBe(0xff);
    expect(board.doors!.read(21)).toBe("closed");
    expect(board.doors!.read(22)).toBe("open");
    expect(board.name).toBe("pcf8574 i2c-1@0x27");
  });

  it("pulls one relay bit low for a pulse, keeping the input bits high", async () => {
    bus.attach(0x27, chip);
    await make(0x27, MIXED).start();
    const pulse = board.locks!.pulse(23, 200); // bit 2
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.latch).toBe(0xff & ~0b100);
    await vi.advanceTimersByTimeAsync(199);
    await pulse;
    expect(chip.latch).toBe(0xff);
    // a door closing during all this still reads through the 1 on its latch
    chip.setPin(4, 0);
    await vi.advanceTimersByTimeAsync(50 + 30 + 50);
    expect(changes).toEqual([[24, "closed"]]);
  });

  it("drives active-high relays to 0 when off, still writing 1 to inputs", async () => {
    bus.attach(0x20, chip);
    await make(0x20, { ...MIXED, relays: { ...MIXED.relays, activeLow: false } }).start();
    expect(chip.latch).toBe(0xf0);
    const pulse = board.locks!.pulse(21, 100);
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.latch).toBe(0xf1);
    await vi.advanceTimersByTimeAsync(99);
    await pulse;
    expect(chip.latch).toBe(0xf0);
  });

  it("is a PCF8574A at 0x38-0x3F and faults / recovers like any board", async () => {
    bus.attach(0x3f, chip);
    const events: string[] = [];
    make(0x3f, MIXED);
    board.on("fault", () => events.push("fault"));
    board.on("recovered", () => events.push("recovered"));
    await board.start();
    expect(board.name).toBe("pcf8574a i2c-1@0x3f");
    bus.failNext(100, "EIO", 0x3f);
    await vi.advanceTimersByTimeAsync(50 + 10 * RETRY_BACKOFF.baseMs);
    expect(events).toEqual(["fault"]);
    expect(board.doors!.read(21)).toBe("unknown");
    bus.failNext(0);
    await vi.advanceTimersByTimeAsync(PROBE_BACKOFF.baseMs / 2);
    expect(events).toEqual(["fault", "recovered"]);
    expect(board.doors!.read(21)).toBe("open");
  });

  it("takes only the chip's addresses, and no bit twice", () => {
    const ok = (address: number) => Pcf8574Config.safeParse({ type: "pcf8574", address, ...MIXED }).success;
    expect([0x20, 0x27, 0x38, 0x3f].map(ok)).toEqual([true, true, true, true]);
    expect([0x1f, 0x28, 0x37, 0x40].map(ok)).toEqual([false, false, false, false]);
    const clash = { relays: { channels: [{ channel: 1, bit: 4 }] }, doors: { channels: [{ channel: 1, bit: 4 }] } };
    expect(Pcf8574Config.safeParse({ type: "pcf8574", ...clash }).success).toBe(false);
  });
});
