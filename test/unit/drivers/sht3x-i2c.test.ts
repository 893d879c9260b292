// The SHT3x driver against the sensor model on the emulated bus: the command on the wire, the wait
// for tMEAS, the decode, and every failure as a LockerError.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { SHT3X_TMEAS_HIGH_MS, Sht3xModel } from "../../../src/drivers/i2c/emulator/sht3x.js";
import { createSht3x, SHT3X_WAIT_MS, Sht3xConfig, type Sht3xPart } from "../../../src/drivers/i2c/sht3x.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";

let bus: I2cBusEmulator;
let model: Sht3xModel;
let sensor: Sht3xPart;

beforeEach(async () => {
  vi.useFakeTimers({ now: 0 });
  bus = new I2cBusEmulator();
  model = new Sht3xModel(4.5, 60);
  bus.attach(0x44, model);
  sensor = createSht3x(Sht3xConfig.parse({ type: "sht3x", compartment: "A03" }), { log: silentLogger(), openBus: bus.opener() });
  await sensor.start();
});

afterEach(async () => {
  await sensor.stop();
  vi.useRealTimers();
});

async function read(): Promise<unknown> {
  const p = sensor.read().catch((e: unknown) => e);
  await vi.advanceTimersByTimeAsync(SHT3X_WAIT_MS * 4);
  return p;
}

describe("sht3x on i2c", () => {
  it("writes 0x2400, waits out tMEAS, reads six bytes and decodes them", async () => {
    const r = (await read()) as { celsius: number; humidity: number };
    // the model quantizes to 16-bit counts: 175 / 65535 ≈ 0.0027 °C per step
    expect(r.celsius).toBeCloseTo(4.5, 2);
    expect(r.humidity).toBeCloseTo(60, 2);
    expect(bus.trace(0x44)).toEqual([expect.stringMatching(/^w 24 00$/), expect.stringMatching(/^r > ([0-9a-f]{2} ){5}[0-9a-f]{2}$/)]);
    expect(SHT3X_WAIT_MS).toBeGreaterThanOrEqual(SHT3X_TMEAS_HIGH_MS);
    const [write, answer] = bus.transactions;
    expect(answer!.address).toBe(0x44);
    expect(answer!.kind).toBe("read");
    expect(write!.wrote).toEqual([0x24, 0x00]);
    expect(sensor.health()).toMatchObject({ kind: "sensor", health: "ok" });
    expect(sensor.name).toBe("sht3x i2c-1@0x44");
    expect(sensor.compartment).toBe("A03");
  });

  it("follows the compartment's temperature", async () => {
    model.set(-18);
    expect(((await read()) as { celsius: number }).celsius).toBeCloseTo(-18, 2);
  });

  it("rejects a bad CRC with a LockerError, never a reading", async () => {
    model.corruptNext = true;
    const e = await read();
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((e as Error).message).toContain("CRC");
    expect(sensor.health().health).toBe("faulted");
    expect(((await read()) as { celsius: number }).celsius).toBeCloseTo(4.5, 2);
    expect(sensor.health().health).toBe("ok");
  });

  it("retries one bus error, then gives up with the errno in the error", async () => {
    bus.failNext(1, "EIO", 0x44);
    expect(((await read()) as { celsius: number }).celsius).toBeCloseTo(4.5, 2);
    bus.detach(0x44);
    const e = await read();
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((e as Error).message).toBe("sht3x i2c-1@0x44: no answer (ENXIO)");
    expect(sensor.health()).toMatchObject({ health: "faulted" });
    expect(sensor.health().detail).toContain("A03");
  });

  it("never reads before the measurement is done (the model NACKs an early read)", async () => {
    await read();
    const early = bus.transactions.filter((t) => t.failed === "EREMOTEIO");
    expect(early).toEqual([]);
    expect(model.measurements).toBe(1);
    // the model itself: a read right after the command is refused until tMEAS has passed
    const raw = bus.open();
    await raw.i2cWrite(0x44, 2, Buffer.from([0x24, 0x00]));
    const tooEarly = await raw.i2cRead(0x44, 6, Buffer.alloc(6)).catch((e: unknown) => e);
    expect((tooEarly as { code?: string }).code).toBe("EREMOTEIO");
    await vi.advanceTimersByTimeAsync(SHT3X_TMEAS_HIGH_MS);
    expect((await raw.i2cRead(0x44, 6, Buffer.alloc(6))).bytesRead).toBe(6);
    await raw.close();
  });
});
