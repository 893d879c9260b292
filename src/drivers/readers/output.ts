// What every reader does with a read: make it a badge id (hex, uppercase, as the ledger hashes it),
// a scanned text or keypad keys; count a repeat of the same tag once (Dedupe); count what it had
// to throw away, by reason. Badge ids, scans and keys never reach a log line (they open doors).
import type { EventEmitter } from "node:events";
import type { Logger } from "../../log.js";
import type { InputEvents } from "../types.js";
import { Dedupe } from "./dedupe.js";
import { badgeIdsField, readerFields } from "./config.js";

export { badgeIdsField, readerFields };

export interface ReadStats {
  reads: number;
  /** Reads of the same tag within dedupeMs, not passed on. */
  repeats: number;
  /** What was thrown away, by reason (bad checksum, parity, garbage, timeout …). */
  discarded: Record<string, number>;
}

const MAX_SCAN = 512;

/** A badge id from a reader's text, or undefined when it cannot be one (4-32 hex digits). */
export function badgeId(text: string, form: "as-is" | "decimal-to-hex" = "as-is"): string | undefined {
  const t = text.trim();
  if (form === "decimal-to-hex") {
    if (!/^[0-9]{1,20}$/.test(t)) return undefined;
    return BigInt(t).toString(16).toUpperCase().padStart(8, "0");
  }
  return /^[0-9A-Fa-f]{4,32}$/.test(t) ? t.toUpperCase() : undefined;
}

export class ReaderOutput {
  readonly stats: ReadStats = { reads: 0, repeats: 0, discarded: {} };
  private readonly dedupe: Dedupe;

  constructor(
    private readonly source: EventEmitter<InputEvents>,
    private readonly terminal: string,
    dedupeMs: number,
    private readonly log: Logger,
    now?: () => number,
  ) {
    this.dedupe = new Dedupe(dedupeMs, now);
  }

  badge(text: string, form: "as-is" | "decimal-to-hex" = "as-is"): void {
    const id = badgeId(text, form);
    if (!id) return this.discard("not a badge id");
    if (!this.fresh(`badge:${id}`)) return;
    this.source.emit("input", { kind: "badge", terminal: this.terminal, id });
  }

  scan(text: string): void {
    const t = text.trim();
    if (!t) return;
    if (t.length > MAX_SCAN) return this.discard("scan too long");
    if (!this.fresh(`scan:${t}`)) return;
    this.source.emit("input", { kind: "scan", terminal: this.terminal, text: t });
  }

  /** Keypad keys: each press counts, no dedupe. */
  keys(keys: string): void {
    if (!keys) return;
    this.stats.reads++;
    this.source.emit("input", { kind: "keys", terminal: this.terminal, keys });
  }

  discard(reason: string, n = 1): void {
    this.stats.discarded[reason] = (this.stats.discarded[reason] ?? 0) + n;
    this.log.debug({ reason }, "reader input discarded");
  }

  /** "12 reads, 3 discarded (checksum 2, garbage 1)" for health details. */
  summary(): string {
    const d = Object.entries(this.stats.discarded);
    const total = d.reduce((s, [, n]) => s + n, 0);
    return `${this.stats.reads} reads${total ? `, ${total} discarded (${d.map(([r, n]) => `${r} ${n}`).join(", ")})` : ""}`;
  }

  private fresh(key: string): boolean {
    if (!this.dedupe.accept(key)) {
      this.stats.repeats++;
      return false;
    }
    this.stats.reads++;
    return true;
  }
}
