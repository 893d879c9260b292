// The lock channels a real board drives and senses, read from its config alone: its own module,
// without the schemas, for what needs it on every bank's start (config/checks.ts); profile.ts and
// the drivers' schemas load only for a real bank (config/schema.ts, loadRealProfile).
import type { BoardConfig } from "./profile.js";

const range = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i);
/** Channels of an expander's bit map: a list per bit (null = unused) or {channel, bit} pairs. */
const listed = (channels: readonly (number | null)[] | readonly { channel: number }[] | undefined): number[] =>
  (channels ?? []).flatMap((c) => (c === null ? [] : typeof c === "number" ? [c] : [c.channel]));

/** The lock channels a board drives and senses, read from its config alone. */
export function boardChannels(b: BoardConfig): { locks: number[]; doors: number[] } {
  switch (b.type) {
    case "gpio-relays":
      return { locks: b.relays.map((r) => r.channel), doors: [] };
    case "gpio-doors":
      return { locks: [], doors: b.doors.map((d) => d.channel) };
    case "mcp23017":
    case "pcf8574":
      return { locks: listed(b.relays?.channels), doors: listed(b.doors?.channels) };
    case "pca9534":
      return { locks: listed(b.relays.channels), doors: [] };
    case "kerong":
    case "cu8a": {
      const all = b.boards.flatMap((x) => range(x.firstChannel, x.channels));
      return { locks: all, doors: all };
    }
  }
}
