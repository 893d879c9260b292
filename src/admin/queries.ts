// What lockerctl is shown of the ledger, computed one way whoever asks: the daemon answering on its
// admin socket (admin/server.ts), or lockerctl reading the ledger file itself while lockerd is not
// running (cli/offline.ts). Events by filter, compartment rows, and the selftest checks that need
// no hardware. Stats are computeStats (stats.ts), shared the same way.
import { statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import { holdOf } from "../domain/compartment.js";
import type { LedgerEvent } from "../domain/events.js";
import type { Compartment, Ledger } from "../ledger/ledger.js";
import { MIGRATIONS } from "../ledger/migrations.js";
import type { CompartmentRow, StorageStatus } from "./protocol.js";

export interface SelftestCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface EventQuery {
  sinceSeq?: number | undefined;
  sinceTs?: number | undefined;
  type?: string | undefined;
  limit: number;
}

/** `alarm.`: that prefix; `alarm` (no dot): the whole alarm.* family; `parcel.picked_up`: that type only. */
export function eventMatcher(type: string | undefined): (e: LedgerEvent) => boolean {
  if (!type) return () => true;
  if (type.endsWith(".")) return (e) => e.type.startsWith(type);
  if (!type.includes(".")) return (e) => e.type === type || e.type.startsWith(`${type}.`);
  return (e) => e.type === type;
}

/** With no since: the newest `limit` matching events; else the first `limit` from there. Oldest first. */
export function findEvents(ledger: Ledger, q: EventQuery): LedgerEvent[] {
  const match = eventMatcher(q.type);
  const { sinceSeq, sinceTs, limit } = q;
  const out: LedgerEvent[] = [];
  if (sinceSeq === undefined && sinceTs === undefined) {
    for (let to = ledger.headSeq; to >= 1 && out.length < limit; to -= 1000) {
      const page = ledger.eventsFrom(Math.max(1, to - 999), 1000).filter(match);
      out.unshift(...page.slice(-(limit - out.length)));
    }
    return out;
  }
  for (let from = sinceSeq ?? 1; out.length < limit; ) {
    const page = ledger.eventsFrom(from, 1000);
    if (!page.length) break;
    for (const e of page) if ((sinceTs === undefined || e.ts >= sinceTs) && match(e) && out.length < limit) out.push(e);
    from = page[page.length - 1]!.seq + 1;
  }
  return out;
}

/** An event as lockerctl shows it (no hashes). */
export function eventView(e: LedgerEvent) {
  return { seq: e.seq, id: e.id, ts: e.ts, type: e.type, compartment: e.compartment, parcel: e.parcel, actor: e.actor, data: e.data };
}

/**
 * Every compartment as a row. `keypad` names its keypad number (the daemon: its config layout);
 * `door` what is known of its door (the daemon: live; the ledger file alone: nothing).
 */
export function compartmentRows(ledger: Ledger, now: number, opts: { keypad: (id: string) => string; door?: (c: Compartment) => string }): CompartmentRow[] {
  return ledger.compartments().map((c) => {
    const parcel = c.parcelId ? ledger.parcel(c.parcelId) : undefined;
    return {
      id: c.id,
      keypad: opts.keypad(c.id),
      size: c.size,
      state: c.state,
      door: opts.door ? opts.door(c) : c.door,
      enabled: c.enabled,
      parcel: c.parcelId,
      parcelAgeMs: parcel ? now - (parcel.depositedAt ?? parcel.createdAt) : null,
      since: c.since,
      pulses: c.pulses,
      failedOpens: c.failedOpens,
      faultReason: c.faultReason,
      ...holdOf(c),
    };
  });
}

/**
 * Keypad numbers without the config: column number (columns in bank order, as the compartments'
 * positions have them) then the row of the id, as compartmentIds (config/schema.ts) makes them.
 */
export function keypadNumbers(compartments: readonly Pick<Compartment, "id" | "position">[]): (id: string) => string {
  const columns: string[] = [];
  for (const c of [...compartments].sort((a, b) => a.position - b.position)) {
    const col = c.id.replace(/[0-9]+$/, "");
    if (!columns.includes(col)) columns.push(col);
  }
  return (id) => {
    const col = id.replace(/[0-9]+$/, "");
    return `${columns.indexOf(col) + 1}${id.slice(col.length).padStart(2, "0")}`;
  };
}

const MB = 2 ** 20;

/**
 * Every selftest check that needs the ledger and the data directory only: schema, the whole file
 * (integrity_check, not the start's quick_check), what the tables must agree on, the custody chain,
 * file modes, sizes, the disk. `storage`: the daemon's disk monitor, when there is one; `schema`:
 * the file's version when the ledger read is a migrated image of it.
 */
export function ledgerChecks(
  ledger: Ledger,
  dataDir: string,
  opts: { minFreeBytes: number; floorNote?: string; storage?: StorageStatus | undefined; schema?: number },
): SelftestCheck[] {
  const checks: SelftestCheck[] = [];
  // The file's own version: an older ledger read by lockerctl was migrated in memory only.
  const schema = opts.schema ?? ledger.schemaVersion();
  checks.push({
    name: "ledger schema",
    ok: schema === MIGRATIONS.length,
    detail: schema === MIGRATIONS.length ? `version ${schema}` : `version ${schema} of ${MIGRATIONS.length}: lockerd migrates it at its next start`,
  });
  const integrity = ledger.integrity(true);
  checks.push({ name: "ledger integrity", ok: integrity === "ok", detail: integrity === "ok" ? "integrity_check ok" : integrity });
  const broken = ledger.invariants().filter((i) => i.rows.length);
  checks.push({
    name: "ledger tables agree",
    ok: broken.length === 0,
    detail: broken.length ? broken.map((i) => `${i.rule}: ${i.rows.slice(0, 3).join(", ")}${i.rows.length > 3 ? ` (+${i.rows.length - 3})` : ""}`).join("; ") : "parcels, compartments and codes agree",
  });
  const chain = ledger.verify();
  checks.push({ name: "custody chain", ok: chain.ok, detail: chain.ok ? `${chain.checked} events verify` : `broken at seq ${chain.brokenAt}: ${chain.reason}` });
  const dirMode = statSync(dataDir).mode & 0o777;
  const keyMode = modeOf(join(dataDir, "device.key"));
  checks.push({ name: "data directory", ok: dirMode === 0o700 && keyMode === 0o600, detail: `dir ${dirMode.toString(8)}, device.key ${keyMode === null ? "missing" : keyMode.toString(8)}` });
  const file = join(dataDir, "ledger.db");
  const { events } = ledger.counts();
  checks.push({ name: "ledger size", ok: true, detail: `ledger.db ${mb(sizeOf(file))}, WAL ${mb(sizeOf(`${file}-wal`))}; ${events} events kept, head seq ${ledger.headSeq}` });
  const fs = statfsSync(dataDir);
  const freeMb = Math.floor((fs.bavail * fs.bsize) / MB);
  const floorMb = Math.floor(opts.minFreeBytes / MB);
  const st = opts.storage;
  checks.push(
    st?.state === "full"
      ? { name: "disk space", ok: false, detail: `disk full: ${st.path}, ${freeMb} MB free; the ledger takes no writes (${st.detail ?? ""})` }
      : { name: "disk space", ok: freeMb >= floorMb, detail: `${dataDir}: ${freeMb} MB free (floor ${floorMb} MB${opts.floorNote ?? ""})` },
  );
  return checks;
}

function modeOf(path: string): number | null {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return null;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

const mb = (bytes: number) => (bytes >= MB ? `${(bytes / MB).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`);
