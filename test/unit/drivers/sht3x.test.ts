// The SHT3x codec against literal bytes: the datasheet's CRC example, known raw values, bad CRCs and
// short answers. And the simulated sensor, which answers through the same decoder.
import { describe, expect, it } from "vitest";
import { SimTemperatureSensor, sht3xAnswer } from "../../../src/drivers/sim/temperature.js";
import { decodeSht3x, sht3xCelsius, sht3xCrc, sht3xHumidity, sht3xMeasureCommand } from "../../../src/drivers/temperature.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");

function rejection(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("sht3x codec", () => {
  it("sends the single-shot high-repeatability command without clock stretching (Table 9)", () => {
    expect(sht3xMeasureCommand()).toEqual(hex("24 00"));
  });

  it("computes the datasheet's CRC example, CRC(0xBEEF) = 0x92 (section 4.12)", () => {
    expect(sht3xCrc(hex("BE EF"))).toBe(0x92);
    expect(sht3xCrc(hex("00 00"))).toBe(0x81);
    expect(sht3xCrc(hex("66 66"))).toBe(0x93);
    expect(sht3xCrc(hex("80 00"))).toBe(0xa2);
    expect(sht3xCrc(hex("FF FF"))).toBe(0xac);
  });

  it("decodes raw T 0x6666 to exactly 25 °C and raw RH 0x8000 to 50.00076 %", () => {
    // 175 * 26214 / 65535 = 70 exactly; 100 * 32768 / 65535 = 50.000762951...
    const r = decodeSht3x(hex("66 66 93 80 00 A2"));
    expect(r.celsius).toBe(25);
    expect(r.humidity).toBeCloseTo(50.000763, 6);
  });

  it("decodes the ends of the range: 0x0000 = -45 °C / 0 %RH, 0xFFFF = 130 °C / 100 %RH", () => {
    expect(decodeSht3x(hex("00 00 81 FF FF AC"))).toEqual({ celsius: -45, humidity: 100 });
    expect(decodeSht3x(hex("FF FF AC 00 00 81"))).toEqual({ celsius: 130, humidity: 0 });
    expect(sht3xCelsius(0x3333)).toBe(-10); // 175 * 13107 / 65535 = 35
    expect(sht3xHumidity(0x3333)).toBe(20);
  });

  it("rejects a bad temperature CRC, a bad humidity CRC and a flipped data bit: never a reading", () => {
    for (const bad of ["66 66 94 80 00 A2", "66 66 93 80 00 A3", "66 67 93 80 00 A2", "66 66 93 80 01 A2"]) {
      const e = rejection(() => decodeSht3x(hex(bad)));
      expect(isLockerError(e, ErrorCode.HardwareUnavailable), bad).toBe(true);
      expect((e as Error).message).toMatch(/CRC mismatch/);
    }
    const e = rejection(() => decodeSht3x(hex("66 66 94 80 00 A2")));
    expect(isLockerError(e) && e.context).toEqual({ word: "temperature", expected: 0x93, got: 0x94 });
  });

  it("rejects a truncated or overlong answer", () => {
    for (const short of ["", "66", "66 66 93", "66 66 93 80 00", "66 66 93 80 00 A2 00"]) {
      const e = rejection(() => decodeSht3x(hex(short)));
      expect(isLockerError(e, ErrorCode.HardwareUnavailable), short).toBe(true);
      expect((e as Error).message).toMatch(/expected 6/);
    }
  });
});

describe("SimTemperatureSensor", () => {
  it("answers with the sensor's bytes, CRCs included", () => {
    expect(sht3xAnswer(0x6666, 0x8000)).toEqual(hex("66 66 93 80 00 A2"));
    expect(sht3xAnswer(0xbeef, 0x0000)).toEqual(hex("BE EF 92 00 00 81"));
  });

  it("reads what was set, quantized to the sensor's 16-bit steps", async () => {
    const s = new SimTemperatureSensor("sim A02", 25, 50);
    expect(await s.read()).toEqual({ celsius: 25, humidity: expect.closeTo(50, 2) });
    s.set(4.2);
    const r = await s.read();
    expect(Math.abs(r.celsius - 4.2)).toBeLessThanOrEqual(175 / 65535 / 2);
    expect(r.humidity).toBeCloseTo(50, 2);
    s.set(-60, 120); // beyond the sensor's range: clamped, as the real one saturates
    expect(await s.read()).toEqual({ celsius: -45, humidity: 100 });
    expect(s.name).toBe("sim A02");
  });

  it("rejects every read while failing (unplugged), and reads again once plugged back", async () => {
    const s = new SimTemperatureSensor("sim A02");
    s.failing = true;
    await expect(s.read()).rejects.toMatchObject({ code: ErrorCode.HardwareUnavailable });
    s.failing = false;
    expect((await s.read()).celsius).toBeCloseTo(4, 2);
    expect(s.reads).toBe(2);
  });
});
