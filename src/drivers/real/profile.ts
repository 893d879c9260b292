// The "real" hardware profile: which boards, readers, display, buzzer and sensors a bank is built
// from (config `hardware`), and the parts they become. Each driver owns its own config schema; this
// module lists them and checks what spans them: every compartment's lock channel is driven by
// exactly one board and sensed by exactly one.
import { z } from "zod";
import type { Logger } from "../../log.js";
import { createGpioBuzzer, GpioBuzzerConfig } from "../gpio/buzzer.js";
import { createGpioDoors, GpioDoorsConfig } from "../gpio/doors.js";
import { createGpioRelays, GpioRelaysConfig } from "../gpio/relays.js";
import { createLcd, LcdConfig } from "../display/lcd.js";
import { createMcp23017, Mcp23017Config } from "../i2c/mcp23017.js";
import { createPca9534, Pca9534Config } from "../i2c/pca9534.js";
import { createPcf8574, Pcf8574Config } from "../i2c/pcf8574.js";
import { createSht3x, Sht3xConfig, type Sht3xPart } from "../i2c/sht3x.js";
import type { DoorPart, InputPart, ItemPart, LockPart, Part } from "../parts.js";
import { createRs485Boards } from "../rs485/boards.js";
import { Cu8aConfig, KerongConfig } from "../rs485/config.js";
import { createReader, ReaderConfig } from "../readers/index.js";
import { RealHardware } from "./hardware.js";

export const BoardConfig = z.discriminatedUnion("type", [GpioRelaysConfig, GpioDoorsConfig, Mcp23017Config, Pcf8574Config, Pca9534Config, KerongConfig, Cu8aConfig]);
export type BoardConfig = z.infer<typeof BoardConfig>;

export const RealProfile = z.strictObject({
  profile: z.literal("real"),
  boards: z.array(BoardConfig).min(1).max(64).describe("lock outputs and door inputs, on any mix of boards"),
  readers: z.array(ReaderConfig).max(16).default([]).describe("keypads, badge, QR and barcode readers"),
  display: LcdConfig.optional(),
  buzzer: GpioBuzzerConfig.optional(),
  thermometers: z.array(Sht3xConfig).max(64).default([]),
});
export type RealProfile = z.infer<typeof RealProfile>;

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

/** Issues for the bank's lock channels not covered exactly once (path under `hardware`). */
export function coverageIssues(profile: RealProfile, channels: readonly { id: string; lock: number }[]): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  const drives = new Map<number, number[]>();
  const senses = new Map<number, number[]>();
  profile.boards.forEach((b, i) => {
    const { locks, doors } = boardChannels(b);
    for (const c of locks) drives.set(c, [...(drives.get(c) ?? []), i]);
    for (const c of doors) senses.set(c, [...(senses.get(c) ?? []), i]);
  });
  for (const { id, lock } of channels) {
    const d = drives.get(lock) ?? [];
    const s = senses.get(lock) ?? [];
    if (d.length === 0) issues.push({ path: ["boards"], message: `${id} (lock ${lock}): no board drives its lock` });
    if (d.length > 1) issues.push({ path: ["boards", d[1]!], message: `${id} (lock ${lock}) is driven by boards ${d.join(" and ")}` });
    if (s.length === 0) issues.push({ path: ["boards"], message: `${id} (lock ${lock}): no board senses its door` });
    if (s.length > 1) issues.push({ path: ["boards", s[1]!], message: `${id} (lock ${lock}) is sensed by boards ${s.join(" and ")}` });
  }
  return issues;
}

/** Build the parts of a real bank. Nothing is opened here: RealHardware.start() does that. */
export function buildRealHardware(profile: RealProfile, deps: { log: Logger; terminal: string }): RealHardware {
  const log = deps.log.child({ module: "hardware" });
  const locks: LockPart[] = [];
  const doors: DoorPart[] = [];
  const items: ItemPart[] = [];
  const all: Part[] = [];
  for (const b of profile.boards) {
    switch (b.type) {
      case "gpio-relays": {
        const p = createGpioRelays(b, { log });
        locks.push(p);
        all.push(p);
        break;
      }
      case "gpio-doors": {
        const p = createGpioDoors(b, { log });
        doors.push(p);
        all.push(p);
        break;
      }
      case "mcp23017":
      case "pcf8574":
      case "pca9534": {
        const board = b.type === "mcp23017" ? createMcp23017(b, { log }) : b.type === "pcf8574" ? createPcf8574(b, { log }) : createPca9534(b, { log });
        if (board.locks) locks.push(board.locks);
        if (board.doors) doors.push(board.doors);
        all.push(board);
        break;
      }
      case "kerong":
      case "cu8a": {
        for (const p of createRs485Boards(b, { log }).parts) {
          locks.push(p);
          doors.push(p);
          if (p.itemChannels.length) items.push(p);
          all.push(p);
        }
        break;
      }
    }
  }
  const inputs: InputPart[] = profile.readers.map((r) => createReader(r, { log, terminal: deps.terminal }));
  all.push(...inputs);
  const display = profile.display ? createLcd(profile.display, { log }) : undefined;
  if (display) all.push(display);
  const buzzer = profile.buzzer ? createGpioBuzzer(profile.buzzer, { log }) : undefined;
  if (buzzer) all.push(buzzer);
  const thermometers = new Map<string, Sht3xPart>();
  for (const t of profile.thermometers) {
    const p = createSht3x(t, { log });
    thermometers.set(t.compartment, p);
    all.push(p);
  }
  return new RealHardware({ locks, doors, items, inputs, display, buzzer, thermometers, all }, log);
}
