// What a reader's line of text becomes: a badge id (hex, uppercase, as the ledger hashes it), a
// scanned text (QR / barcode) or keypad keys. Shared by HID and serial readers.
import type { EventEmitter } from "node:events";
import { z } from "zod";
import type { Logger } from "../../log.js";
import type { InputEvents } from "../types.js";
import type { Dedupe } from "./dedupe.js";

export const lineFields = {
  terminal: z.string().min(1).max(64).optional().describe("the keypad dialogue this reader feeds; default terminal.id"),
  emits: z.enum(["badge", "scan", "keys"]).default("badge").describe("what a line is: a badge id, a scanned code, or keypad keys"),
  format: z.enum(["hex", "decimal"]).default("hex").describe("badge readers: the card number as hex, or decimal (converted to hex)"),
  dedupeMs: z.int().min(0).max(10_000).default(1500).describe("the same tag again within this counts once"),
};

export interface LineOptions {
  terminal?: string | undefined;
  emits: "badge" | "scan" | "keys";
  format: "hex" | "decimal";
}

/** A decimal card number (as many readers print) → the hex id the ledger knows; undefined if not a number. */
export function decimalToHex(text: string): string | undefined {
  if (!/^[0-9]{1,20}$/.test(text)) return undefined;
  return BigInt(text).toString(16).toUpperCase().padStart(8, "0");
}

/** Validate and emit one line. Badge ids and keys are never logged (they open doors). */
export function emitLine(source: EventEmitter<InputEvents>, opts: LineOptions, defaultTerminal: string, text: string, dedupe: Dedupe, log: Logger): void {
  const terminal = opts.terminal ?? defaultTerminal;
  const t = text.trim();
  switch (opts.emits) {
    case "badge": {
      const id = opts.format === "decimal" ? decimalToHex(t) : /^[0-9A-Fa-f]{4,32}$/.test(t) ? t.toUpperCase() : undefined;
      if (!id || id.length > 32) return void log.warn({ length: t.length }, "reader line is not a badge id: ignored");
      if (!dedupe.accept(id)) return;
      source.emit("input", { kind: "badge", terminal, id });
      return;
    }
    case "scan":
      if (!t || t.length > 512) return void log.warn({ length: t.length }, "scan ignored: empty or over 512 characters");
      if (!dedupe.accept(t)) return;
      source.emit("input", { kind: "scan", terminal, text: t });
      return;
    case "keys": {
      // A USB keypad: digits, * and #; Enter is #.
      const keys = `${t}#`.replace(/[^0-9*#]/g, "");
      if (keys) source.emit("input", { kind: "keys", terminal, keys });
      return;
    }
  }
}
