// HD44780 character LCD driven in 4-bit mode through a PCF8574 "backpack": the codec from
// instructions and characters to the bytes the PCF8574 puts on the LCD's pins. Instruction codes
// and the 4-bit initialization are from the Hitachi HD44780U datasheet (Table 6, Figure 24).
//
//   one nibble = 3 PCF8574 bytes:  data, E low (setup) │ data, E high │ data, E low (latched on fall)
//   one byte   = high nibble then low nibble
import { BackpackPins, DEFAULT_BACKPACK_PINS } from "./config.js";

export { BackpackPins, DEFAULT_BACKPACK_PINS };

/** Instructions (Table 6). */
export const LCD = {
  CLEAR: 0x01,
  /** Entry mode set: I/D = 1 (cursor moves right), S = 0 (no display shift). */
  ENTRY_MODE: 0x06,
  /** Display on, cursor off, blink off. */
  DISPLAY_ON: 0x0c,
  /** Function set: DL = 0 (4-bit), N = 1 (2 lines; 4-line displays are 2 folded lines), F = 0 (5x8). */
  FUNCTION_SET: 0x28,
  SET_DDRAM: 0x80,
} as const;

/** Time the controller needs after CLEAR (1.52 ms, Table 6), rounded up to timer resolution. */
export const CLEAR_WAIT_MS = 2;

/**
 * 4-bit initialization by instruction (Figure 24): three "function set 8-bit" nibbles (wait
 * > 4.1 ms after the first, > 100 µs after the second) resync the controller whatever state it was
 * in, then 0x2 selects 4-bit mode. `waitMs` after each nibble; the first one waits 5 ms.
 */
export const INIT_NIBBLES: readonly { nibble: number; waitMs: number }[] = [
  { nibble: 0x3, waitMs: 5 },
  { nibble: 0x3, waitMs: 1 },
  { nibble: 0x3, waitMs: 1 },
  { nibble: 0x2, waitMs: 1 },
];
/** After 4-bit mode is on: function set, display on, clear, entry mode (as whole bytes). */
export const INIT_COMMANDS: readonly number[] = [LCD.FUNCTION_SET, LCD.DISPLAY_ON, LCD.CLEAR, LCD.ENTRY_MODE];

export class BackpackCodec {
  constructor(
    private readonly pins: BackpackPins,
    public backlight: boolean,
  ) {}

  /** The three bytes that clock one nibble into the LCD (RW is always 0: we never read). */
  nibble(nibble: number, rs: boolean): number[] {
    const p = this.pins;
    let v = 0;
    if (nibble & 1) v |= 1 << p.d4;
    if (nibble & 2) v |= 1 << p.d5;
    if (nibble & 4) v |= 1 << p.d6;
    if (nibble & 8) v |= 1 << p.d7;
    if (rs) v |= 1 << p.rs;
    if (this.backlight) v |= 1 << p.backlight;
    return [v, v | (1 << p.e), v];
  }

  byte(byte: number, rs: boolean): number[] {
    return [...this.nibble(byte >> 4, rs), ...this.nibble(byte & 0x0f, rs)];
  }

  command(byte: number): number[] {
    return this.byte(byte, false);
  }

  /** Set the cursor to `address`, then write `text` from there. */
  text(address: number, text: string): number[] {
    const out = this.command(LCD.SET_DDRAM | (address & 0x7f));
    for (const ch of text) out.push(...this.byte(ch.charCodeAt(0), true));
    return out;
  }
}

/** DDRAM address of each row's first column (rows 3 and 4 continue rows 1 and 2). */
export function rowOffsets(cols: number): number[] {
  return [0x00, 0x40, cols, 0x40 + cols];
}

/** One line as the display will show it: ASCII the character ROM (A00) has, padded or cut. */
export function fitLine(line: string, cols: number): string {
  const safe = [...line].map((ch) => {
    const c = ch.codePointAt(0) ?? 0x3f;
    // 0x5C is ¥ and 0x7E/0x7F are arrows in ROM A00
    return c >= 0x20 && c <= 0x7d && c !== 0x5c ? ch : "?";
  });
  return safe.slice(0, cols).join("").padEnd(cols, " ");
}
