// Compartment temperature sensors: the interface the bank sees, and the pure codec of the SHT3x
// (Sensirion SHT3x-DIS, I2C) that the real driver will speak. Section numbers below are those of
// the SHT3x-DIS datasheet (version 5, May 2018).
//
//   driver ──write sht3xMeasureCommand()──▶ sensor   (single shot, ~15 ms)
//   driver ◀──read 6 bytes──────────────── sensor   T MSB, T LSB, CRC, RH MSB, RH LSB, CRC
//   decodeSht3x(bytes) → { celsius, humidity }      (or a LockerError: never a reading from bad bytes)
import { ErrorCode, LockerError } from "../errors.js";

export interface TemperatureReading {
  celsius: number;
  /** Relative humidity in %, when the sensor measures it. */
  humidity: number | null;
}

/** One compartment's temperature sensor. */
export interface TemperatureSensor {
  /** One measurement. Rejects (LockerError) when the sensor does not answer or answers garbage. */
  read(): Promise<TemperatureReading>;
  /** For logs and alarms, e.g. "sht3x i2c-1@0x44". */
  readonly name: string;
}

/** Single shot, high repeatability, clock stretching disabled: 0x2400 (section 4.3, Table 9). */
export const SHT3X_MEASURE_HIGH = 0x2400;

/** The answer to a measurement: two 16-bit words, each followed by its CRC (section 4.4). */
export const SHT3X_ANSWER_BYTES = 6;

/** The measurement command as sent on the bus, MSB first (section 4.3). */
export function sht3xMeasureCommand(): Buffer {
  return Buffer.from([SHT3X_MEASURE_HIGH >> 8, SHT3X_MEASURE_HIGH & 0xff]);
}

/**
 * CRC-8 of the data bytes (section 4.12, Table 20): polynomial 0x31 (x^8 + x^5 + x^4 + 1), init
 * 0xFF, no reflection, final XOR 0x00. The datasheet's example: CRC(0xBEEF) = 0x92.
 */
export function sht3xCrc(bytes: Uint8Array): number {
  let crc = 0xff;
  for (const b of bytes) {
    crc ^= b;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** Raw temperature counts to °C (section 4.13): T = -45 + 175 * S_T / (2^16 - 1). */
export function sht3xCelsius(raw: number): number {
  return -45 + (175 * raw) / 65535;
}

/** Raw humidity counts to %RH (section 4.13): RH = 100 * S_RH / (2^16 - 1). */
export function sht3xHumidity(raw: number): number {
  return (100 * raw) / 65535;
}

/** Decode the 6-byte measurement answer. A short answer or a bad CRC is an error, never a reading. */
export function decodeSht3x(answer: Uint8Array): TemperatureReading {
  if (answer.length !== SHT3X_ANSWER_BYTES) {
    throw new LockerError(ErrorCode.HardwareUnavailable, `sht3x answer of ${answer.length} bytes, expected ${SHT3X_ANSWER_BYTES}`, {
      length: answer.length,
    });
  }
  const rawT = word(answer, 0, "temperature");
  const rawRH = word(answer, 3, "humidity");
  return { celsius: sht3xCelsius(rawT), humidity: sht3xHumidity(rawRH) };
}

/** The 16-bit word at `at`, checked against the CRC byte that follows it. */
function word(answer: Uint8Array, at: number, what: "temperature" | "humidity"): number {
  const data = answer.subarray(at, at + 2);
  const expected = sht3xCrc(data);
  const got = answer[at + 2];
  if (got !== expected) {
    throw new LockerError(ErrorCode.HardwareUnavailable, `sht3x ${what} CRC mismatch`, { word: what, expected, got });
  }
  return ((data[0] ?? 0) << 8) | (data[1] ?? 0);
}
