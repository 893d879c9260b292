// PCF8574 / PCF8574A (NXP datasheet rev. 5): no registers. Each written byte sets the 8 latches;
// a read returns the 8 pin levels. Quasi-bidirectional (section 8.1): a latch at 0 pulls the pin
// low hard; a latch at 1 is only a weak pull-up, so the pin reads whatever the outside drives,
// or 1 when nothing does. Power-on latches are all 1.
import type { I2cTarget } from "./bus.js";

type Level = 0 | 1;

export class Pcf8574Model implements I2cTarget {
  latch = 0xff;
  private readonly external: (Level | null)[] = new Array<Level | null>(8).fill(null);
  /** Every byte written, in order. */
  readonly writes: number[] = [];
  /** Called for every byte written (the LCD backpack's HD44780 listens here). */
  onWrite: ((byte: number) => void) | null = null;

  /** The outside world drives pin `bit` low or high, or lets it go (null). */
  setPin(bit: number, level: Level | null): void {
    this.external[bit] = level;
  }

  /** The pin levels: a latch at 0 wins; a latch at 1 reads the outside, or 1 (weak pull-up). */
  pins(): number {
    let v = 0;
    for (let bit = 0; bit < 8; bit++) {
      const level = this.latch & (1 << bit) ? (this.external[bit] ?? 1) : 0;
      v |= level << bit;
    }
    return v;
  }

  write(bytes: Uint8Array): void {
    for (const b of bytes) {
      this.latch = b;
      this.writes.push(b);
      this.onWrite?.(b);
    }
  }

  read(length: number): Uint8Array {
    return new Uint8Array(length).fill(this.pins());
  }
}
