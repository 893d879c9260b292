// lockerctl without the daemon: when nothing listens on the admin socket, the commands that need
// no hardware (compartments, events, stats, selftest) read the ledger file itself, read-only
// (ledger/read-ledger.ts: nothing in the data directory is written or created), with the same
// queries the daemon answers them with (admin/queries.ts, admin/stats.ts), and say so.
//
//   not running ─▶ data dir (--data, /var/lib/lockerd, ./data) ─▶ readLedger ─▶ command.offline ─▶ render
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { compartmentRows, eventView, findEvents, keypadNumbers, ledgerChecks } from "../admin/queries.js";
import { computeStats } from "../admin/stats.js";
import type { ReadOnlyLedger } from "../ledger/read-ledger.js";
import type { Args } from "./commands.js";

/** Where systemd's unit keeps the bank (StateDirectory=lockerd). */
export const SYSTEM_DATA_DIR = "/var/lib/lockerd";
/** lockerd's storage.minFreeMb default: lockerctl does not read the config. */
const DEFAULT_MIN_FREE_MB = 50;

/** The data directory whose ledger to read: --data, else /var/lib/lockerd when it exists, else ./data. */
export function dataDirOf(data: string | undefined): string {
  if (data) return resolve(data);
  return existsSync(SYSTEM_DATA_DIR) ? SYSTEM_DATA_DIR : resolve("data");
}

export function offlineCompartments(l: ReadOnlyLedger, _args: Args, now: number): unknown {
  const keypad = keypadNumbers(l.ledger.compartments());
  // The ledger keeps the door the daemon last saw; with no daemon reading the switches, it is not known now.
  return { compartments: compartmentRows(l.ledger, now, { keypad, door: () => "unknown" }) };
}

export function offlineEvents(l: ReadOnlyLedger, args: Args): unknown {
  const { sinceSeq, sinceTs, type, limit } = args as { sinceSeq?: number; sinceTs?: number; type?: string; limit: number };
  return { events: findEvents(l.ledger, { sinceSeq, sinceTs, type, limit }).map(eventView) };
}

export function offlineStats(l: ReadOnlyLedger, args: Args, now: number): unknown {
  return computeStats(l.ledger, { now, days: args.days as number });
}

const NOT_RUN = "not run: needs the running lockerd, which alone drives the hardware";

export function offlineSelftest(l: ReadOnlyLedger): unknown {
  const checks = ledgerChecks(l.ledger, dirname(l.file), {
    minFreeBytes: DEFAULT_MIN_FREE_MB * 2 ** 20,
    floorNote: ", lockerd's default",
    schema: l.schema,
  });
  const skipped = [
    ...["devices", "door sensors read", "door polarity"].map((name) => ({ name, detail: NOT_RUN })),
    { name: "server link", detail: "not run: needs the running lockerd, which alone holds the link" },
  ];
  return { ok: checks.every((c) => c.ok), checks, skipped };
}
