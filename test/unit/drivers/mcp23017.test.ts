// MCP23017 boards against the register-level chip model on the emulated bus: the registers after
// start, relay pulses in OLAT, polled and interrupt-driven door inputs, bus errors that are
// retried, a board that fails and comes back, and one that is absent at start.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GpioEmulator, PI4_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { Mcp23017Model } from "../../../src/drivers/i2c/emulator/mcp23017.js";
import type { ExpanderBoard } from "../../../src/drivers/i2c/expander.js";
import { PROBE_BACKOFF, RETRY_BACKOFF } from "../../../src/drivers/i2c/link.js";
import { createMcp23017, Mcp23017Config } from "../../../src/drivers/i2c/mcp23017.js";
import type { DoorState } from "../../../src/drivers/types.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";
import { createLogger } from "../../../src/log.js";

const ADDR = 0x20;
// random() = 0: every backoff wait is its floor, base / 2
const PROBE_MS = PROBE_BACKOFF.baseMs / 2;
const RETRY_MS = RETRY_BACKOFF.baseMs / 2;

let bus: I2cBusEmulator;
let chip: Mcp23017Model;
let board: ExpanderBoard;
let changes: [number, DoorState][];
let events: string[];
let logLines: string[];

function make(config: Record<string, unknown>, gpio?: GpioEmulator): ExpanderBoard {
  logLines = [];
  const log = createLogger("info", { write: (s: string) => void logLines.push(s) });
  const parsed = Mcp23017Config.parse({ type: "mcp23017", address: ADDR, ...config });
  board = createMcp23017(parsed, { log, openBus: bus.opener(), random: () => 0, gpio });
  changes = [];
  events = [];
  board.doors?.on("change", (channel, state) => changes.push([channel, state]));
  board.on("fault", (detail) => events.push(`fault ${detail}`));
  board.on("recovered", () => events.push("recovered"));
  return board;
}

const STANDARD = {
  relays: { port: "A", channels: [1, 2, 3, 4, 5, 6, 7, 8] },
  doors: { port: "B", channels: [1, 2, 3, 4, 5, 6, 7, 8] },
};

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  bus = new I2cBusEmulator();
  chip = new Mcp23017Model();
});

afterEach(async () => {
  await board.stop();
  vi.useRealTimers();
});

describe("mcp23017 start", () => {
  it("configures relays as outputs at off, doors as inputs with pull-ups", async () => {
    bus.attach(ADDR, chip);
    for (let i = 0; i < 8; i++) chip.setPin(8 + i, i < 4 ? 0 : null); // doors 1-4 closed (switch to GND)
    await make(STANDARD).start();
    expect(chip.reg("IODIRA")).toBe(0x00);
    expect(chip.reg("IODIRB")).toBe(0xff);
    expect(chip.reg("GPPUB")).toBe(0xff);
    expect(chip.reg("GPPUA")).toBe(0x00);
    expect(chip.reg("OLATA")).toBe(0x00);
    expect(chip.reg("IPOLB")).toBe(0x00);
    expect(chip.reg("GPINTENB")).toBe(0x00); // no INT line configured: polled
    expect(chip.reg("IOCON")).toBe(0x44); // MIRROR | ODR, BANK = 0
    expect(chip.unsupported).toEqual([]);
    for (let pin = 0; pin < 8; pin++) expect(chip.pinLevel(pin)).toBe(0);
    // the latch is written before the direction, so no output ever starts energized
    const trace = bus.trace(ADDR);
    expect(trace).toContain("w 14 00");
    expect(trace.indexOf("w 14 00")).toBeLessThan(trace.indexOf("w 00 00"));
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((c) => board.doors?.read(c))).toEqual(["closed", "closed", "closed", "closed", "open", "open", "open", "open"]);
    expect(changes).toEqual([]);
    expect(board.locks?.health()).toMatchObject({ kind: "locks", health: "ok", name: "mcp23017 i2c-1@0x20 relays" });
    expect(board.doors?.health()).toMatchObject({ kind: "doors", health: "ok" });
  });

  it("writes an active-low relay port all high, and leaves unused bits as inputs", async () => {
    bus.attach(ADDR, chip);
    await make({ relays: { port: "B", channels: [11, null, 13], activeLow: true } }).start();
    expect(chip.reg("IODIRB")).toBe(0xff & ~0b101);
    expect(chip.reg("OLATB") & 0b101).toBe(0b101);
    expect(chip.pinLevel(8)).toBe(1);
    expect(chip.pinLevel(10)).toBe(1);
    expect(board.doors).toBeNull();
  });
});

describe("mcp23017 relays", () => {
  beforeEach(async () => {
    bus.attach(ADDR, chip);
    await make(STANDARD).start();
  });

  it("energizes one bit of OLATA for the pulse time", async () => {
    const pulse = board.locks!.pulse(3, 250);
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.reg("OLATA")).toBe(0b100);
    expect(chip.pinLevel(2)).toBe(1);
    await vi.advanceTimersByTimeAsync(249);
    await pulse;
    expect(chip.reg("OLATA")).toBe(0);
  });

  it("keeps two overlapping pulses apart in the shared latch", async () => {
    const a = board.locks!.pulse(1, 200);
    await vi.advanceTimersByTimeAsync(100);
    const b = board.locks!.pulse(8, 200);
    await vi.advanceTimersByTimeAsync(1);
    expect(chip.reg("OLATA")).toBe(0b1000_0001);
    await vi.advanceTimersByTimeAsync(100);
    expect(chip.reg("OLATA")).toBe(0b1000_0000);
    await vi.advanceTimersByTimeAsync(100);
    await Promise.all([a, b]);
    expect(chip.reg("OLATA")).toBe(0);
  });

  it("retries a few bus errors without a fault", async () => {
    bus.failNext(2, "EIO", ADDR);
    const pulse = board.locks!.pulse(1, 100);
    await vi.advanceTimersByTimeAsync(2 * RETRY_MS + 100);
    await pulse;
    expect(events).toEqual([]);
    expect(bus.transactions.filter((t) => t.failed === "EIO")).toHaveLength(2);
    expect(chip.reg("OLATA")).toBe(0);
  });

  it("leaves every relay off after stop, even mid-pulse", async () => {
    const pulse = board.locks!.pulse(5, 1000);
    await vi.advanceTimersByTimeAsync(10);
    expect(chip.reg("OLATA")).toBe(0b10000);
    await board.locks!.stop();
    await pulse;
    expect(chip.reg("OLATA")).toBe(0);
    expect(bus.openHandles).toBe(0);
    expect(board.health().health).toBe("absent");
  });

  it("rejects a channel it does not own", async () => {
    const e = await board.locks!.pulse(42, 100).catch((err: unknown) => err);
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
  });
});

describe("mcp23017 faults", () => {
  it("marks the board faulted after the retries, probes, and recovers a power-cycled chip", async () => {
    bus.attach(ADDR, chip);
    chip.setPin(8, 0); // door 1 closed
    await make(STANDARD).start();
    bus.detach(ADDR); // unplugged
    const pulse = board.locks!.pulse(1, 100).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(10 * RETRY_MS);
    const e = await pulse;
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect(events).toEqual(["fault relay on: ENXIO after 4 tries"]);
    expect(board.health().health).toBe("faulted");
    expect(board.doors!.read(1)).toBe("unknown");
    expect(logLines.some((l) => l.includes("faulted, probing with backoff"))).toBe(true);
    // while faulted, a pulse fails at once instead of waiting out retries
    const fast = await board.locks!.pulse(2, 100).catch((err: unknown) => err);
    expect(isLockerError(fast, ErrorCode.HardwareUnavailable)).toBe(true);

    // it comes back freshly powered (all registers at reset), with door 1 now open
    const fresh = new Mcp23017Model();
    expect(fresh.reg("IODIRA")).toBe(0xff);
    bus.attach(ADDR, fresh);
    await vi.advanceTimersByTimeAsync(PROBE_MS + 30 + 50);
    expect(events).toEqual(["fault relay on: ENXIO after 4 tries", "recovered"]);
    expect(board.health().health).toBe("ok");
    expect(fresh.reg("IODIRA")).toBe(0x00);
    expect(fresh.reg("GPPUB")).toBe(0xff);
    expect(fresh.reg("OLATA")).toBe(0x00);
    expect(logLines.some((l) => l.includes("recovered"))).toBe(true);
    // the door opened while the board was away: reported once it answers again
    expect(board.doors!.read(1)).toBe("open");
    expect(changes).toEqual([[1, "open"]]);
    const again = board.locks!.pulse(2, 100);
    await vi.advanceTimersByTimeAsync(100);
    await again;
  });

  it("starts without throwing when the board is absent, and picks it up when it appears", async () => {
    make(STANDARD);
    const started = board.start();
    await vi.advanceTimersByTimeAsync(10 * RETRY_MS);
    await started;
    expect(board.health().health).toBe("faulted");
    expect(events).toHaveLength(1);
    expect(events[0]).toContain("ENXIO");
    expect(board.doors!.read(1)).toBe("unknown");
    // two more probes fail, then it is plugged in
    await vi.advanceTimersByTimeAsync(2 * PROBE_MS);
    expect(events).toHaveLength(1);
    chip.setPin(9, 0);
    bus.attach(ADDR, chip);
    await vi.advanceTimersByTimeAsync(PROBE_MS);
    expect(events.at(-1)).toBe("recovered");
    expect(chip.reg("IODIRB")).toBe(0xff);
    expect(board.doors!.read(2)).toBe("closed");
    expect(board.doors!.read(1)).toBe("open");
    expect(changes).toEqual([]); // first sight of the doors is not a change
  });

  it("counts EREMOTEIO and EIO bursts as faults too, and recovers when the bus settles", async () => {
    bus.attach(ADDR, chip);
    await make(STANDARD).start();
    bus.failNext(4 + 3, "EREMOTEIO", ADDR); // one operation's 4 tries, then 3 failed probes
    await vi.advanceTimersByTimeAsync(50 + 10 * RETRY_MS); // the next poll meets the burst
    expect(events).toHaveLength(1);
    expect(events[0]).toContain("EREMOTEIO");
    await vi.advanceTimersByTimeAsync(3 * PROBE_MS);
    expect(events).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(PROBE_MS);
    expect(events.at(-1)).toBe("recovered");
  });
});

describe("mcp23017 doors", () => {
  it("polls the inputs and reports a bouncing door once", async () => {
    bus.attach(ADDR, chip);
    chip.setPin(12, 0); // door 5 closed
    await make({ ...STANDARD, pollMs: 10, debounceMs: 30 }).start();
    // the door opens with contact bounce: 0/1 every 4 ms for 20 ms, then stays open (floating → pull-up)
    for (let i = 0; i < 5; i++) {
      chip.setPin(12, i % 2 === 0 ? null : 0);
      await vi.advanceTimersByTimeAsync(4);
    }
    chip.setPin(12, null);
    await vi.advanceTimersByTimeAsync(200);
    expect(changes).toEqual([[5, "open"]]);
    expect(board.doors!.read(5)).toBe("open");
  });

  it("reads the inputs on the INT line's falling edge, with GPINTEN set", async () => {
    const root = await mkdtemp(join(tmpdir(), "lockerd-mcp-int-"));
    try {
      await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
      const gpio = new GpioEmulator();
      const INT = 512 + 24;
      gpio.drive(INT, 1); // pulled up
      chip.onInterrupt = (_pin, level) => gpio.drive(INT, level); // INTA and INTB mirrored, either will do
      bus.attach(ADDR, chip);
      make({ ...STANDARD, debounceMs: 30, interrupt: { pin: 24, sysfsRoot: root, reconcileMs: 5000 } }, gpio);
      await board.start();
      expect(chip.reg("GPINTENB")).toBe(0xff);
      expect(chip.reg("INTCONB")).toBe(0x00);
      expect(gpio.edge(INT)).toBe("falling");
      const polls = bus.transactions.length;
      chip.setPin(15, 0); // door 8 closes: INT falls, the driver reads GPIOB, INT rises
      await vi.advanceTimersByTimeAsync(0);
      expect(chip.intLevel(0)).toBe(1);
      expect(gpio.level(INT)).toBe(1);
      await vi.advanceTimersByTimeAsync(30);
      expect(changes).toEqual([[8, "closed"]]);
      // far fewer bus transactions than polling every 50 ms would need
      expect(bus.transactions.length - polls).toBeLessThan(5);
    } finally {
      await board.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("mcp23017 config", () => {
  it("rejects relays and doors on one port, addresses off the chip's range, duplicate channels", () => {
    expect(Mcp23017Config.safeParse({ type: "mcp23017", relays: { port: "A", channels: [1] }, doors: { port: "A", channels: [2] } }).success).toBe(false);
    expect(Mcp23017Config.safeParse({ type: "mcp23017", address: 0x28, relays: { channels: [1] } }).success).toBe(false);
    expect(Mcp23017Config.safeParse({ type: "mcp23017", relays: { channels: [1, 1] } }).success).toBe(false);
    expect(Mcp23017Config.safeParse({ type: "mcp23017" }).success).toBe(false);
  });

  it("defaults: bus 1, 0x20, relays on A active-high, doors on B closed-when-low with pull-ups", () => {
    const c = Mcp23017Config.parse({ type: "mcp23017", relays: { channels: [1] }, doors: { channels: [1] } });
    expect(c).toMatchObject({
      bus: 1,
      address: 0x20,
      retries: 3,
      debounceMs: 30,
      pollMs: 50,
      relays: { port: "A", activeLow: false },
      doors: { port: "B", activeLow: true, pullUp: true },
    });
  });
});
