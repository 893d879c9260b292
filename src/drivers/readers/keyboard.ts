// USB HID boot-keyboard reports, as keyboard-wedge badge, QR and barcode readers send them
// (Device Class Definition for HID 1.11, Appendix B.1; usage IDs from HID Usage Tables 1.4, §10
// Keyboard/Keypad page):
//
//   [reportId?] modifier reserved k1 k2 k3 k4 k5 k6
//   modifier bits: 0x02 left shift, 0x20 right shift (others ignored)
//   0x04-0x1D a-z · 0x1E-0x27 1..9,0 · 0x28 Enter · 0x58 keypad Enter · 0x59-0x62 keypad 1..9,0
//   0x2C-0x38 space and punctuation (US layout) · 0x54-0x57, 0x63 keypad / * - + .
//
// A key counts when it appears in a report and was not in the previous one (n-key rollover sends
// every held key in every report); 0x01 (ErrorRollOver: too many keys) reports are ignored. Enter
// ends a line. Reports of any other length are counted as malformed, never decoded.
import { ErrorCode, LockerError } from "../../errors.js";

const LETTERS = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "1234567890";
const SHIFTED_DIGITS = "!@#$%^&*()";
const SYMBOLS: Record<number, [string, string]> = {
  0x2c: [" ", " "],
  0x2d: ["-", "_"],
  0x2e: ["=", "+"],
  0x2f: ["[", "{"],
  0x30: ["]", "}"],
  0x31: ["\\", "|"],
  0x33: [";", ":"],
  0x34: ["'", '"'],
  0x35: ["`", "~"],
  0x36: [",", "<"],
  0x37: [".", ">"],
  0x38: ["/", "?"],
  0x54: ["/", "/"],
  0x55: ["*", "*"],
  0x56: ["-", "-"],
  0x57: ["+", "+"],
  0x63: [".", "."],
};
export const KEY_ENTER = 0x28;
export const KEYPAD_ENTER = 0x58;
const SHIFT = 0x02 | 0x20;
const ROLLOVER_ERROR = 0x01;

/** The character of one usage ID, or undefined for keys that type nothing. */
export function keyChar(usage: number, shift: boolean): string | undefined {
  if (usage >= 0x04 && usage <= 0x1d) {
    const c = LETTERS[usage - 0x04]!;
    return shift ? c.toUpperCase() : c;
  }
  if (usage >= 0x1e && usage <= 0x27) return (shift ? SHIFTED_DIGITS : DIGITS)[usage - 0x1e];
  if (usage >= 0x59 && usage <= 0x62) return DIGITS[usage - 0x59];
  const s = SYMBOLS[usage];
  return s ? s[shift ? 1 : 0] : undefined;
}

export interface DecoderOptions {
  /** Reports start with a report ID byte (some composite devices). */
  reportId: boolean;
  /** Longest line kept; a reader that never sends Enter cannot grow memory. */
  maxLine?: number;
}

export const BOOT_REPORT = 8;

export class BootKeyboardDecoder {
  private previous = new Set<number>();
  private line = "";
  /** Reports that were not 8 bytes (+ report ID): counted, not decoded. */
  malformed = 0;
  /** Keys that typed a character or ended a line (the driver's partial-line timer restarts on each). */
  keystrokes = 0;
  /** Lines longer than maxLine: dropped whole at Enter, never cut short into a different id. */
  overlong = 0;
  private overflow = false;

  constructor(private readonly opts: DecoderOptions) {}

  /** One report in; the lines it completed (usually none or one) out. */
  feed(report: Uint8Array): string[] {
    const r = this.opts.reportId ? report.subarray(1) : report;
    if (r.length !== BOOT_REPORT) {
      this.malformed++;
      return [];
    }
    const keys = [...r.subarray(2, 8)].filter((k) => k !== 0);
    if (keys.includes(ROLLOVER_ERROR)) return [];
    const shift = (r[0]! & SHIFT) !== 0;
    const done: string[] = [];
    for (const k of keys) {
      if (this.previous.has(k)) continue;
      if (k === KEY_ENTER || k === KEYPAD_ENTER) {
        this.keystrokes++;
        if (this.overflow) this.overlong++;
        else if (this.line) done.push(this.line);
        this.line = "";
        this.overflow = false;
        continue;
      }
      const c = keyChar(k, shift);
      if (c === undefined) continue;
      this.keystrokes++;
      if (this.line.length < (this.opts.maxLine ?? 256)) this.line += c;
      else this.overflow = true;
    }
    this.previous = new Set(keys);
    return done;
  }

  /** Drop a partial line (a reader unplugged mid-read, or a timeout). */
  reset(): void {
    this.line = "";
    this.overflow = false;
    this.previous.clear();
  }

  /** Drop a partial line but keep the held keys (a timeout while a key is down must not retype it). */
  dropLine(): void {
    this.line = "";
    this.overflow = false;
  }

  get pending(): string {
    return this.line;
  }
}

/** The boot-keyboard report a reader sends for one key (tests and the emulator). */
export function keyReport(usage: number, shift = false, reportId?: number): Buffer {
  const r = Buffer.from([shift ? 0x02 : 0, 0, usage, 0, 0, 0, 0, 0]);
  return reportId === undefined ? r : Buffer.concat([Buffer.from([reportId]), r]);
}

/** The usage ID (and shift) that types `c`, for building reports of a string. */
export function usageOf(c: string): { usage: number; shift: boolean } {
  const lower = LETTERS.indexOf(c);
  if (lower >= 0) return { usage: 0x04 + lower, shift: false };
  const upper = LETTERS.indexOf(c.toLowerCase());
  if (upper >= 0) return { usage: 0x04 + upper, shift: true };
  const d = DIGITS.indexOf(c);
  if (d >= 0) return { usage: 0x1e + d, shift: false };
  const sd = SHIFTED_DIGITS.indexOf(c);
  if (sd >= 0) return { usage: 0x1e + sd, shift: true };
  for (const [u, [plain, shifted]] of Object.entries(SYMBOLS)) {
    if (plain === c) return { usage: Number(u), shift: false };
    if (shifted === c) return { usage: Number(u), shift: true };
  }
  throw new LockerError(ErrorCode.BadInput, `no key types ${JSON.stringify(c)}`);
}

/** The reports a wedge reader sends for `text` then Enter: each key down, then all keys up. */
export function typeReports(text: string, reportId?: number): Buffer[] {
  const out: Buffer[] = [];
  for (const c of text) {
    const { usage, shift } = usageOf(c);
    out.push(keyReport(usage, shift, reportId), keyReport(0, false, reportId));
  }
  out.push(keyReport(KEY_ENTER, false, reportId), keyReport(0, false, reportId));
  return out;
}
