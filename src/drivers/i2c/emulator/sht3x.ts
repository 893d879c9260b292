// SHT3x-DIS (Sensirion datasheet v5, May 2018). Single-shot measurement without clock stretching:
// the command (section 4.3) starts a measurement; until it completes (tMEAS, Table 4: 15 ms max
// at high repeatability) a read header is NACKed (section 4.4); then the six answer bytes, once.
import { sht3xAnswer } from "../../sim/temperature.js";
import { nack, type I2cTarget } from "./bus.js";

const MEASURE_HIGH_NO_STRETCH = 0x2400;
const SOFT_RESET = 0x30a2;
export const SHT3X_TMEAS_HIGH_MS = 15;

export class Sht3xModel implements I2cTarget {
  private rawT = 0;
  private rawRH = 0;
  private startedAt: number | null = null;
  /** Corrupt the temperature CRC of the next answer. */
  corruptNext = false;
  measurements = 0;

  constructor(
    celsius: number,
    humidity = 50,
    private readonly now: () => number = Date.now,
  ) {
    this.set(celsius, humidity);
  }

  set(celsius: number, humidity = 50): void {
    const counts = (v: number, offset: number, span: number) => Math.min(0xffff, Math.max(0, Math.round(((v + offset) * 0xffff) / span)));
    this.rawT = counts(celsius, 45, 175);
    this.rawRH = counts(humidity, 0, 100);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length !== 2) throw nack();
    const command = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
    if (command === MEASURE_HIGH_NO_STRETCH) {
      this.startedAt = this.now();
      this.measurements++;
    } else if (command === SOFT_RESET) {
      this.startedAt = null;
    } else {
      throw nack();
    }
  }

  read(length: number): Uint8Array {
    if (this.startedAt === null || this.now() - this.startedAt < SHT3X_TMEAS_HIGH_MS) throw nack();
    this.startedAt = null;
    const answer = sht3xAnswer(this.rawT, this.rawRH);
    if (this.corruptNext) {
      answer[2] = (answer[2] ?? 0) ^ 0xff;
      this.corruptNext = false;
    }
    return Uint8Array.from(answer.subarray(0, length));
  }
}
