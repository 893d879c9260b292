// An HD44780 behind a PCF8574 backpack, decoded from the bytes the backpack puts on its pins: the
// controller latches RS and D4-D7 on the falling edge of E (HD44780U datasheet, Figure 25 timing).
// It starts in 8-bit mode as after power-on, so only a correct 4-bit init makes later bytes land;
// DDRAM addressing is the 2-line layout (0x00-0x27, 0x40-0x67). Tests read `screen()`.
//
//   bus ─▶ Pcf8574Model.onWrite(byte) ─▶ E falling? ─▶ nibble ─▶ (8-bit: instruction | 4-bit: pair)
import { Pcf8574Model } from "../i2c/emulator/pcf8574.js";
import { DEFAULT_BACKPACK_PINS, rowOffsets, type BackpackPins } from "./hd44780.js";

export interface LatchedNibble {
  rs: 0 | 1;
  nibble: number;
  at: number;
}

export interface Instruction {
  rs: 0 | 1;
  value: number;
  at: number;
}

export class Hd44780Emulator {
  /** Attach this to an I2cBusEmulator at the backpack's address. */
  readonly backpack = new Pcf8574Model();
  readonly nibbles: LatchedNibble[] = [];
  readonly instructions: Instruction[] = [];
  /** Protocol errors seen: an instruction while busy, RW high on a write, ... */
  readonly violations: string[] = [];
  readonly ddram = new Uint8Array(0x80).fill(0x20);
  fourBit = false;
  twoLines = false;
  displayOn = false;
  backlight = false;
  /** Characters written to DDRAM since creation. */
  dataWrites = 0;
  private pending: number | null = null;
  private address = 0;
  private increment = true;
  private lastE = 0;
  private busyUntil = 0;

  constructor(
    private readonly geometry: { cols: number; rows: number },
    private readonly pins: BackpackPins = DEFAULT_BACKPACK_PINS,
    private readonly now: () => number = Date.now,
  ) {
    this.backpack.onWrite = (byte) => this.pinsChanged(byte);
  }

  /** The visible rows, as a person in front of the bank reads them. */
  screen(): string[] {
    const offsets = rowOffsets(this.geometry.cols);
    return Array.from({ length: this.geometry.rows }, (_, r) => {
      const start = offsets[r] ?? 0;
      return String.fromCharCode(...this.ddram.subarray(start, start + this.geometry.cols));
    });
  }

  /** The controller loses power and comes back: 8-bit mode, display off (DDRAM kept blank). */
  powerCycle(): void {
    this.fourBit = false;
    this.pending = null;
    this.displayOn = false;
    this.ddram.fill(0x20);
  }

  private bit(byte: number, pin: number): number {
    return (byte >> pin) & 1;
  }

  private pinsChanged(byte: number): void {
    const p = this.pins;
    this.backlight = this.bit(byte, p.backlight) === 1;
    const e = this.bit(byte, p.e);
    if (this.lastE === 1 && e === 0) {
      if (this.bit(byte, p.rw)) this.violations.push("RW high while writing");
      const nibble = this.bit(byte, p.d4) | (this.bit(byte, p.d5) << 1) | (this.bit(byte, p.d6) << 2) | (this.bit(byte, p.d7) << 3);
      this.latch(this.bit(byte, p.rs) as 0 | 1, nibble);
    }
    this.lastE = e;
  }

  private latch(rs: 0 | 1, nibble: number): void {
    const at = this.now();
    this.nibbles.push({ rs, nibble, at });
    if (!this.fourBit) {
      // 8-bit mode: D0-D3 are not wired on a backpack and read as 0
      this.execute(rs, nibble << 4, at);
    } else if (this.pending === null) {
      this.pending = nibble;
    } else {
      const value = (this.pending << 4) | nibble;
      this.pending = null;
      this.execute(rs, value, at);
    }
  }

  private execute(rs: 0 | 1, value: number, at: number): void {
    this.instructions.push({ rs, value, at });
    if (at < this.busyUntil) this.violations.push(`${rs ? "data" : "instruction"} 0x${value.toString(16)} while busy`);
    if (rs === 1) {
      this.ddram[this.address] = value;
      this.dataWrites++;
      this.address = this.step(this.address);
      return;
    }
    if (value & 0x80) {
      this.address = value & 0x7f;
    } else if (value & 0x40) {
      // set CGRAM address: custom characters are not modelled
    } else if (value & 0x20) {
      this.fourBit = (value & 0x10) === 0;
      this.twoLines = (value & 0x08) !== 0;
    } else if (value & 0x10) {
      // cursor/display shift: not modelled
    } else if (value & 0x08) {
      this.displayOn = (value & 0x04) !== 0;
    } else if (value & 0x04) {
      this.increment = (value & 0x02) !== 0;
    } else if (value & 0x02) {
      this.address = 0;
      this.busyUntil = at + 1.52;
    } else if (value & 0x01) {
      this.ddram.fill(0x20);
      this.address = 0;
      this.increment = true;
      this.busyUntil = at + 1.52;
    }
  }

  /** The next DDRAM address in 2-line mode: 0x27 wraps to 0x40, 0x67 to 0x00. */
  private step(address: number): number {
    if (!this.increment) return address === 0 ? 0x67 : address === 0x40 ? 0x27 : address - 1;
    if (address === 0x27) return 0x40;
    if (address === 0x67) return 0x00;
    return (address + 1) & 0x7f;
  }
}
