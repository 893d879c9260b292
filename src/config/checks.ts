// What a valid config may still say that deserves a word, and how two configs differ: pure
// functions over a parsed Config, shared by `lockerd --check-config` (check-config.ts), the start
// (warnings logged) and SIGHUP (what needs a restart).
import { boardChannels } from "../drivers/real/channels.js";
import type { BoardConfig } from "../drivers/real/profile.js";
import { canonicalJson } from "../domain/events.js";
import { compartmentIds, type Config } from "./schema.js";

/**
 * Refrigerated compartments whose temperature nobody watches: no bounds (temperature.minC / maxC),
 * or on a real bank no sensor (hardware.thermometers) naming them. Warnings, not errors: a cold
 * compartment without a sensor still works. (The reverse, a sensor or bounds on a compartment that
 * is not refrigerated or not in the bank, the schema refuses.)
 */
export function sensorWarnings(config: Config): string[] {
  const sensors = config.hardware.profile === "real" ? new Set(config.hardware.thermometers.map((t) => t.compartment)) : undefined;
  return compartmentIds(config.bank.columns).flatMap((c) => {
    if (!c.refrigerated) return [];
    if (!c.temperature) return [`${c.id} is refrigerated but has no temperature sensor (no temperature.minC / maxC): its temperature is not watched`];
    if (sensors && !sensors.has(c.id)) return [`${c.id} is refrigerated with temperature bounds but no sensor (no hardware.thermometers entry naming ${c.id}): its temperature is not watched`];
    return [];
  });
}

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Dotted paths where two configs differ (an array counts as one value: "seed.people"), leaving out
 * the subtrees in `skip` ("bank.columns": the layout is planned, not diffed).
 */
export function configDifferences(a: unknown, b: unknown, skip: readonly string[] = [], path = ""): string[] {
  if (skip.includes(path)) return [];
  if (isPlain(a) && isPlain(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => configDifferences(a[k], b[k], skip, path ? `${path}.${k}` : k));
  }
  return canonicalJson(a) === canonicalJson(b) ? [] : [path || "(root)"];
}

/** Compartments whose temperature sensor or bounds differ between two configs. */
export function temperatureDifferences(a: Config, b: Config): string[] {
  const bounds = (c: Config) => new Map(compartmentIds(c.bank.columns).flatMap((l) => (l.temperature ? [[l.id, canonicalJson(l.temperature)] as const] : [])));
  const before = bounds(a);
  const after = bounds(b);
  return [...new Set([...before.keys(), ...after.keys()])].filter((id) => before.get(id) !== after.get(id)).sort();
}

export interface ChannelRow {
  compartment: string;
  lock: number;
  /** Real bank: the board driving the lock, and the one sensing the door (undefined: none). */
  lockBoard?: string | undefined;
  doorBoard?: string | undefined;
  /** Real bank: the item (infrared) sensor's board, where one is fitted. */
  itemBoard?: string | undefined;
}

/** The bit of an expander's channel list (one entry per bit, or {channel, bit} pairs). */
function bitOf(channels: readonly (number | null | { channel: number; bit: number })[] | undefined, channel: number): number | undefined {
  for (const [i, c] of (channels ?? []).entries()) {
    if (c === channel) return i;
    if (c !== null && typeof c === "object" && c.channel === channel) return c.bit;
  }
  return undefined;
}

/** A board, and where on it `channel` is: "boards[0] kerong /dev/ttyUSB0 address 1 lock 3". */
function describeBoard(b: BoardConfig, i: number, channel: number, role: "lock" | "door"): string {
  const head = `boards[${i}] ${b.type}`;
  switch (b.type) {
    case "gpio-relays":
      return `${head} GPIO ${b.relays.find((r) => r.channel === channel)?.pin ?? "?"}`;
    case "gpio-doors":
      return `${head} GPIO ${b.doors.find((d) => d.channel === channel)?.pin ?? "?"}`;
    case "mcp23017":
    case "pcf8574":
    case "pca9534": {
      const side = role === "lock" ? b.relays : "doors" in b ? b.doors : undefined;
      const port = side && "port" in side ? ` port ${side.port}` : "";
      const bit = bitOf(side?.channels, channel);
      return `${head} bus ${b.bus} 0x${b.address.toString(16)} ${role === "lock" ? "relay" : "door input"}${port}${bit === undefined ? "" : ` bit ${bit}`}`;
    }
    case "kerong":
    case "cu8a": {
      const sub = b.boards.find((x) => channel >= x.firstChannel && channel < x.firstChannel + x.channels);
      return sub ? `${head} ${b.port} address ${sub.address} lock ${channel - sub.firstChannel + 1}` : head;
    }
  }
}

/** Compartment → lock channel, and on a real bank the boards that drive and sense it. */
export function channelMap(config: Config): ChannelRow[] {
  const hw = config.hardware;
  return compartmentIds(config.bank.columns).map((c) => {
    if (hw.profile !== "real") return { compartment: c.id, lock: c.lock };
    const find = (role: "lock" | "door") => {
      const i = hw.boards.findIndex((b) => (role === "lock" ? boardChannels(b).locks : boardChannels(b).doors).includes(c.lock));
      return i < 0 ? undefined : describeBoard(hw.boards[i]!, i, c.lock, role);
    };
    const items = hw.boards.findIndex(
      (b) => b.type === "kerong" && b.boards.some((x) => x.itemSensors && c.lock >= x.firstChannel && c.lock < x.firstChannel + x.channels),
    );
    return { compartment: c.id, lock: c.lock, lockBoard: find("lock"), doorBoard: find("door"), ...(items >= 0 ? { itemBoard: `boards[${items}] kerong` } : {}) };
  });
}
