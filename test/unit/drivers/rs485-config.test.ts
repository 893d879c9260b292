// The RS485 config fragments: defaults, ranges, and the cross-field checks (unique addresses,
// channel ranges that do not overlap, enough status bytes for the channels).
import { describe, expect, it } from "vitest";
import { createKerongBoards } from "../../../src/drivers/rs485/boards.js";
import { Cu8aConfig, KerongConfig, Rs485Config, characterMs } from "../../../src/drivers/rs485/config.js";
import { silentLogger } from "../../../src/log.js";

const messages = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) =>
  (r.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);

describe("rs485 config", () => {
  it("fills the defaults of a two-board Kerong bus", () => {
    const cfg = KerongConfig.parse({
      type: "kerong",
      port: "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0",
      boards: [
        { address: 0, firstChannel: 1 },
        { address: 1, firstChannel: 17 },
      ],
    });
    expect(cfg).toEqual({
      type: "kerong",
      port: "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0",
      baudRate: 19200,
      boards: [
        { address: 0, firstChannel: 1, channels: 16, itemSensors: true },
        { address: 1, firstChannel: 17, channels: 16, itemSensors: true },
      ],
      lockBitOpen: 0,
      irBitPresent: 1,
      pollMs: 250,
      timeoutMs: 100,
      pulseMs: 500,
      missesToFault: 3,
      retryMaxMs: 5000,
      gapMs: 10,
    });
    expect(cfg.turnaroundMs).toBeUndefined(); // one character time at the bus's baud rate, below
  });

  it("waits one character time at the bus's baud rate before an unlock after an answer, unless turnaroundMs is set (and never more than gapMs)", () => {
    const log = silentLogger();
    const bus = (over: Record<string, unknown>) => createKerongBoards(KerongConfig.parse({ type: "kerong", port: "/dev/null", boards: [{ address: 0, firstChannel: 0 }], ...over }), { log }).bus;
    expect(bus({}).turnaroundMs).toBeCloseTo(10_000 / 19200, 6); // 0.52 ms: 10 bits at 19200 baud
    expect(bus({ baudRate: 9600 }).turnaroundMs).toBeCloseTo(10_000 / 9600, 6);
    expect(bus({ turnaroundMs: 0.25 }).turnaroundMs).toBe(0.25);
    expect(bus({ turnaroundMs: 3, gapMs: 2 }).turnaroundMs).toBe(2);
    expect(characterMs(115200)).toBeCloseTo(0.0868, 4);
  });

  it("fills the defaults of a 0x8A bus", () => {
    const cfg = Cu8aConfig.parse({ type: "cu8a", port: "/dev/ttyUSB0", boards: [{ address: 1, firstChannel: 0 }] });
    expect(cfg).toMatchObject({ baudRate: 9600, statusBytes: 3, statusOrder: "high-first", awaitUnlockReply: true, unlockTimeoutMs: 1000, lockBitOpen: 0 });
    expect(cfg.boards).toEqual([{ address: 1, firstChannel: 0, channels: 24 }]);
  });

  it("picks the family by type", () => {
    expect(Rs485Config.parse({ type: "cu8a", port: "/dev/x", boards: [{ address: 1, firstChannel: 0 }] }).type).toBe("cu8a");
    expect(Rs485Config.safeParse({ type: "modbus", port: "/dev/x", boards: [] }).success).toBe(false);
  });

  it("rejects unknown keys, bad polarities, out-of-range addresses and timings", () => {
    const base = { type: "kerong", port: "/dev/x", boards: [{ address: 0, firstChannel: 1 }] };
    expect(KerongConfig.safeParse({ ...base, pollMS: 250 }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, lockBitOpen: 2 }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, boards: [{ address: 16, firstChannel: 1 }] }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, boards: [{ address: 0, firstChannel: 1, channels: 17 }] }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, pulseMs: 5000 }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, baudRate: 12345 }).success).toBe(false);
    expect(KerongConfig.safeParse({ ...base, boards: [] }).success).toBe(false);
  });

  it("rejects a duplicate address, overlapping channels and channels past 1023", () => {
    const r = KerongConfig.safeParse({
      type: "kerong",
      port: "/dev/x",
      boards: [
        { address: 0, firstChannel: 1 },
        { address: 0, firstChannel: 10 },
        { address: 2, firstChannel: 1020 },
      ],
    });
    expect(messages(r)).toEqual([
      "boards.1.address: address 0 used twice",
      "boards.1.firstChannel: channels 10..25 overlap board 0 (1..16)",
      "boards.2.channels: channels end at 1035, past 1023",
    ]);
  });

  it("rejects more channels than the status bytes carry", () => {
    const r = Cu8aConfig.safeParse({ type: "cu8a", port: "/dev/x", statusBytes: 2, boards: [{ address: 1, firstChannel: 0 }] });
    expect(messages(r)).toEqual(["boards.0.channels: 24 channels but 2 status bytes carry 16"]);
  });
});
