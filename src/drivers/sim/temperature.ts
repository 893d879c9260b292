// A simulated SHT3x in a refrigerated compartment. The reading is encoded to the sensor's six
// answer bytes (with CRCs) and decoded by the real codec, so the sim runs the same decode path as
// the I2C driver; readings come out quantized to the sensor's 16-bit steps (~0.0027 °C).
import { ErrorCode, LockerError } from "../../errors.js";
import { decodeSht3x, sht3xCrc, type TemperatureReading, type TemperatureSensor } from "../temperature.js";

/** Physical value to 16-bit sensor counts, the inverse of section 4.13's formulas, clamped to the range. */
const counts = (value: number, offset: number, span: number): number =>
  Math.min(0xffff, Math.max(0, Math.round(((value + offset) * 0xffff) / span)));

/** The six bytes an SHT3x answers a measurement with: T MSB, T LSB, CRC, RH MSB, RH LSB, CRC. */
export function sht3xAnswer(rawT: number, rawRH: number): Buffer {
  const t = Buffer.from([rawT >> 8, rawT & 0xff]);
  const rh = Buffer.from([rawRH >> 8, rawRH & 0xff]);
  return Buffer.concat([t, Buffer.from([sht3xCrc(t)]), rh, Buffer.from([sht3xCrc(rh)])]);
}

export class SimTemperatureSensor implements TemperatureSensor {
  /** true: the sensor is unplugged, every read rejects. */
  failing = false;
  reads = 0;
  private rawT: number;
  private rawRH: number;

  constructor(
    readonly name: string,
    celsius = 4,
    humidity = 50,
  ) {
    this.rawT = counts(celsius, 45, 175);
    this.rawRH = counts(humidity, 0, 100);
  }

  /** What the compartment's air does. */
  set(celsius: number, humidity?: number): void {
    this.rawT = counts(celsius, 45, 175);
    if (humidity !== undefined) this.rawRH = counts(humidity, 0, 100);
  }

  async read(): Promise<TemperatureReading> {
    this.reads++;
    if (this.failing) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: no answer (NACK)`, { sensor: this.name });
    return decodeSht3x(sht3xAnswer(this.rawT, this.rawRH));
  }
}
