// Wiegand card formats, for converters that pass the raw bits (a line of '0'/'1'):
//
//   26-bit H10301: E FFFFFFFF CCCCCCCCCCCCCCCC O   (E, O: parity bits; F facility, C card)
//     E makes bits 0-12 (itself and the first 12 data bits) even; O makes bits 13-25 odd.
//   34-bit: E + 32 data bits + O: E makes bits 0-16 even, O makes bits 17-33 odd.
//
// (User-space GPIO cannot time Wiegand's 50 µs pulses reliably: use a Wiegand-to-serial or USB
// converter; this decodes what it forwards.)
import { ErrorCode, LockerError } from "../../errors.js";

export interface WiegandCard {
  bits: 26 | 34;
  /** 26-bit only: the 8-bit facility code. */
  facility: number | null;
  /** 26-bit: the 16-bit card number; 34-bit: the 32 data bits. */
  card: number;
  /** The data bits as uppercase hex (26-bit: 6 digits, facility then card; 34-bit: 8): the badge id. */
  id: string;
}

const ones = (s: string) => [...s].filter((c) => c === "1").length;

export type WiegandFault = "malformed" | "length" | "parity";

/** The card in a line of bits; a LockerError (BadInput, context.reason: WiegandFault) when it is not one. */
export function decodeWiegand(bits: string): WiegandCard {
  const refuse = (reason: WiegandFault, message: string) => new LockerError(ErrorCode.BadInput, `wiegand: ${message}`, { reason });
  if (!/^[01]+$/.test(bits)) throw refuse("malformed", "expected a line of 0 and 1");
  const n = bits.length;
  if (n !== 26 && n !== 34) throw refuse("length", `${n} bits, expected 26 or 34`);
  const half = n / 2;
  if (ones(bits.slice(0, half)) % 2 !== 0) throw refuse("parity", "even parity (first half) fails");
  if (ones(bits.slice(half)) % 2 !== 1) throw refuse("parity", "odd parity (second half) fails");
  const data = bits.slice(1, n - 1);
  const value = parseInt(data, 2);
  if (n === 26) {
    return { bits: 26, facility: parseInt(data.slice(0, 8), 2), card: parseInt(data.slice(8), 2), id: value.toString(16).toUpperCase().padStart(6, "0") };
  }
  return { bits: 34, facility: null, card: value, id: value.toString(16).toUpperCase().padStart(8, "0") };
}

/** Encode data bits with their parities (tests, the emulator). */
export function encodeWiegand(data: string): string {
  const half = data.length / 2;
  const first = data.slice(0, half);
  const second = data.slice(half);
  return `${ones(first) % 2 ? "1" : "0"}${data}${ones(second) % 2 ? "0" : "1"}`;
}

/**
 * The badge id in one converter line. `bits`: decoded and parity-checked; `decimal` and `hex`: the
 * converter already decoded the card, its number is taken as is (hex uppercase, without 0x).
 */
export function wiegandLineId(line: string, format: "bits" | "decimal" | "hex"): { id: string } | { reason: string } {
  const t = line.trim();
  switch (format) {
    case "bits":
      try {
        return { id: decodeWiegand(t).id };
      } catch (e) {
        return { reason: `wiegand ${String((e as LockerError).context?.reason ?? "malformed")}` };
      }
    case "decimal":
      return /^[0-9]{1,32}$/.test(t) ? { id: t } : { reason: "not a number" };
    case "hex": {
      const h = t.replace(/^0x/i, "");
      return /^[0-9A-Fa-f]{1,32}$/.test(h) ? { id: h.toUpperCase() } : { reason: "not a number" };
    }
  }
}
