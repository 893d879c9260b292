// PCA9534 (NXP datasheet rev. 7, section 6.2): a command byte selects register 0 input, 1 output,
// 2 polarity inversion, 3 configuration (1 = input); the pointer does not auto-increment. Power-on:
// output 0xFF, polarity 0x00, configuration 0xFF. Inputs have 100 kΩ pull-ups.
import { nack, type I2cTarget } from "./bus.js";

type Level = 0 | 1;

export class Pca9534Model implements I2cTarget {
  /** [input (computed), output, polarity, configuration] */
  readonly regs = [0, 0xff, 0x00, 0xff];
  private pointer = 0;
  private readonly external: (Level | null)[] = new Array<Level | null>(8).fill(null);

  setPin(bit: number, level: Level | null): void {
    this.external[bit] = level;
  }

  /** What pin `bit` carries: an output's latch, or null (high impedance) for an input. */
  outputLevel(bit: number): Level | null {
    const config = this.regs[3] ?? 0xff;
    if (config & (1 << bit)) return null;
    return (this.regs[1] ?? 0) & (1 << bit) ? 1 : 0;
  }

  private input(): number {
    let pins = 0;
    for (let bit = 0; bit < 8; bit++) pins |= (this.outputLevel(bit) ?? this.external[bit] ?? 1) << bit;
    return (pins ^ (this.regs[2] ?? 0)) & 0xff;
  }

  write(bytes: Uint8Array): void {
    const [command, ...data] = bytes;
    if (command === undefined) return;
    if (command > 3) throw nack();
    this.pointer = command;
    for (const b of data) if (this.pointer !== 0) this.regs[this.pointer] = b;
  }

  read(length: number): Uint8Array {
    return new Uint8Array(length).fill(this.pointer === 0 ? this.input() : (this.regs[this.pointer] ?? 0));
  }
}
