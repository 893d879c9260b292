// A PCA9534 8-relay HAT whose relays sit on the output bits out of order: the configured map sends
// each lock channel to its own bit, in the chip model's output and configuration registers.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { Pca9534Model } from "../../../src/drivers/i2c/emulator/pca9534.js";
import type { ExpanderBoard } from "../../../src/drivers/i2c/expander.js";
import { PROBE_BACKOFF, RETRY_BACKOFF } from "../../../src/drivers/i2c/link.js";
import { createPca9534, Pca9534Config } from "../../../src/drivers/i2c/pca9534.js";
import { silentLogger } from "../../../src/log.js";

const ADDR = 0x20;
// relay 1 is wired to bit 7, relay 2 to bit 6, ... relay 8 to bit 0 (a reversed HAT), here used
// for lock channels 31-38
const REVERSED = Array.from({ length: 8 }, (_, i) => ({ channel: 31 + i, bit: 7 - i }));

let bus: I2cBusEmulator;
let chip: Pca9534Model;
let board: ExpanderBoard;

function make(relays: Record<string, unknown>): ExpanderBoard {
  board = createPca9534(Pca9534Config.parse({ type: "pca9534", address: ADDR, relays }), { log: silentLogger(), openBus: bus.opener(), random: () => 0 });
  return board;
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  bus = new I2cBusEmulator();
  chip = new Pca9534Model();
  bus.attach(ADDR, chip);
});

afterEach(async () => {
  await board.stop();
  vi.useRealTimers();
});

describe("pca9534 relay HAT", () => {
  it("starts with every mapped bit an output at off, polarity plain", async () => {
    await make({ channels: REVERSED }).start();
    expect(chip.regs[3]).toBe(0x00); // configuration: all outputs
    expect(chip.regs[1]).toBe(0x00); // output: all off (active-high)
    expect(chip.regs[2]).toBe(0x00);
    expect(board.doors).toBeNull();
    expect(board.locks!.channels).toEqual([31, 32, 33, 34, 35, 36, 37, 38]);
  });

  it("pulses each lock channel on its own mapped bit", async () => {
    await make({ channels: REVERSED }).start();
    for (const { channel, bit } of REVERSED) {
      const pulse = board.locks!.pulse(channel, 100);
      await vi.advanceTimersByTimeAsync(1);
      expect(chip.outputLevel(bit), `channel ${channel}`).toBe(1);
      expect(chip.regs[1]).toBe(1 << bit);
      await vi.advanceTimersByTimeAsync(99);
      await pulse;
      expect(chip.regs[1]).toBe(0);
    }
  });

  it("leaves unmapped bits as inputs and honours active-low relays", async () => {
    // a 3-relay wiring in no order at all
    await make({ activeLow: true, channels: [{ channel: 5, bit: 6 }, { channel: 6, bit: 1 }, { channel: 7, bit: 3 }] }).start();
    const mask = (1 << 6) | (1 << 1) | (1 << 3);
    expect(chip.regs[3]).toBe(0xff & ~mask);
    expect(chip.regs[1]! & mask).toBe(mask); // off = high
    expect(chip.outputLevel(0)).toBeNull();
    const pulse = board.locks!.pulse(7, 50);
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.outputLevel(3)).toBe(0);
    expect(chip.outputLevel(6)).toBe(1);
    await vi.advanceTimersByTimeAsync(49);
    await pulse;
    expect(chip.outputLevel(3)).toBe(1);
  });

  it("turns everything off at stop and after a recovery", async () => {
    await make({ channels: REVERSED }).start();
    const events: string[] = [];
    board.on("fault", () => events.push("fault"));
    board.on("recovered", () => events.push("recovered"));
    const long = board.locks!.pulse(31, 2000);
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.regs[1]).toBe(0x80);
    // the HAT browns out (registers reset to power-on: all inputs, output latch 0xFF)
    bus.detach(ADDR);
    const fresh = new Pca9534Model();
    await vi.advanceTimersByTimeAsync(2000 + 10 * RETRY_BACKOFF.baseMs);
    await long.catch(() => undefined);
    expect(events).toEqual(["fault"]);
    bus.attach(ADDR, fresh);
    await vi.advanceTimersByTimeAsync(PROBE_BACKOFF.baseMs / 2);
    expect(events).toEqual(["fault", "recovered"]);
    expect(fresh.regs[3]).toBe(0x00);
    expect(fresh.regs[1]).toBe(0x00);
    const pulse = board.locks!.pulse(38, 1000);
    await vi.advanceTimersByTimeAsync(1);
    expect(fresh.regs[1]).toBe(0x01);
    await board.stop();
    await pulse;
    expect(fresh.regs[1]).toBe(0x00);
  });

  it("rejects a bit or a channel mapped twice", () => {
    const twice = (channels: unknown) => Pca9534Config.safeParse({ type: "pca9534", relays: { channels } }).success;
    expect(twice([{ channel: 1, bit: 0 }, { channel: 2, bit: 0 }])).toBe(false);
    expect(twice([{ channel: 1, bit: 0 }, { channel: 1, bit: 1 }])).toBe(false);
    expect(twice([{ channel: 1, bit: 8 }])).toBe(false);
  });
});
