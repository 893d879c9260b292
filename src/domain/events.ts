// Ledger event types and the custody hash chain. Pure.
import { createHash } from "node:crypto";

export const EVENT_TYPES = [
  "system.started",
  "system.stopped",
  "system.recovered",
  "system.restored",
  "compartment.reserved",
  "compartment.released",
  "lock.retried",
  "lock.skipped",
  "lock.unavailable",
  "lock.uncertain",
  "lock.settled",
  "compartment.fault",
  "compartment.fault_cleared",
  "compartment.enabled",
  "compartment.disabled",
  "door.opened",
  "door.closed",
  "assignment.failed",
  "deposit.started",
  "deposit.aborted",
  "parcel.reserved",
  "parcel.cancelled",
  "parcel.deposited",
  "parcel.awaiting_recipient",
  "parcel.picked_up",
  "parcel.removed",
  "parcel.dropped_off",
  "parcel.shelved",
  "parcel.collected",
  "parcel.reminder",
  "parcel.escalated",
  "parcel.expired",
  "pickup.started",
  "pickup.aborted",
  "code.issued",
  "code.rejected",
  "code.revoked",
  "person.seeded",
  "terminal.locked_out",
  "admin.open",
  "alarm.brute_force",
  "alarm.forced_open",
  "alarm.door_left_open",
  "alarm.sensor_flapping",
  "alarm.temperature",
  "alarm.sensor_fault",
  "alarm.cleared",
  "alarm.unauthorized_command",
  "person.updated",
  "person.removed",
  "person.added",
  "person.enabled",
  "person.disabled",
  "person.pin_set",
  "person.badge_set",
  "person.finger_enrolled",
  "person.finger_removed",
  "person.finger_deleted",
  "compartment.resized",
  // The config's layout applied (bank/layout.ts): a compartment added, retired (kept for its
  // history, never served again), changed (data {from, to}: size, refrigerated, accessible, lock),
  // or brought back from retirement by the config.
  "compartment.added",
  "compartment.retired",
  "compartment.changed",
  "compartment.reactivated",
  "policy.changed",
  "alarm.item_left_inside",
  "device.fault",
  "device.recovered",
  "alarm.duplicate_identity",
  "alarm.disk_low",
  "storage.recovered",
  // The wall clock (sync/clock.ts): a step ({from, to, deltaMs, synchronized}, `rebased`: this run's
  // parcels whose due times moved with it), and NTP's first synchronization after the bank saw the
  // clock unsynchronized ({uptimeMs}, `restarted`: older parcels whose due times count from the start).
  "clock.stepped",
  "clock.synchronized",
  // The whole ledger file's check after the start, or the daily one, found damage (bank/storage.ts,
  // LedgerCheck): {detail} as SQLite said it. Once per run of the daemon.
  "alarm.ledger_damaged",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NewEvent {
  type: EventType;
  compartment?: string | null;
  parcel?: string | null;
  actor?: string | null;
  data?: Record<string, unknown>;
}

export interface LedgerEvent {
  seq: number;
  id: string;
  ts: number;
  type: EventType;
  compartment: string | null;
  parcel: string | null;
  actor: string | null;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export const GENESIS_HASH = "0".repeat(64);

/**
 * JSON with object keys sorted at every depth: the same event always hashes the same. Otherwise
 * exactly JSON.stringify's rules (toJSON, undefined and functions dropped from objects and turned
 * to null in arrays, non-finite numbers to null), so that the stored text parses back to a value
 * with the same canonical form.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value) ?? "null";
}

function canonical(value: unknown): string | undefined {
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  if (value === undefined || typeof value === "function" || typeof value === "symbol") return undefined;
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v) ?? "null").join(",")}]`;
  const parts: string[] = [];
  for (const k of Object.keys(value).sort()) {
    const v = canonical((value as Record<string, unknown>)[k]);
    if (v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
  }
  return `{${parts.join(",")}}`;
}

/** hash = sha256(prevHash + canonical event without its hash). */
export function eventHash(e: Omit<LedgerEvent, "hash">): string {
  const body = canonicalJson({
    seq: e.seq,
    id: e.id,
    ts: e.ts,
    type: e.type,
    compartment: e.compartment,
    parcel: e.parcel,
    actor: e.actor,
    data: e.data,
    prevHash: e.prevHash,
  });
  return createHash("sha256").update(e.prevHash).update(body).digest("hex");
}

export interface ChainCheck {
  ok: boolean;
  checked: number;
  /** First seq that breaks the chain (gap, wrong prevHash or wrong hash). */
  brokenAt?: number;
  reason?: string;
}

/** Verify a run of events in seq order, starting from the hash before the first. */
export function verifyChain(events: Iterable<LedgerEvent>, prevHash = GENESIS_HASH, firstSeq = 1): ChainCheck {
  let expectSeq = firstSeq;
  let prev = prevHash;
  let checked = 0;
  for (const e of events) {
    if (e.seq !== expectSeq) return { ok: false, checked, brokenAt: e.seq, reason: `gap: expected seq ${expectSeq}` };
    if (e.prevHash !== prev) return { ok: false, checked, brokenAt: e.seq, reason: "prevHash mismatch" };
    if (eventHash(e) !== e.hash) return { ok: false, checked, brokenAt: e.seq, reason: "hash mismatch" };
    prev = e.hash;
    expectSeq++;
    checked++;
  }
  return { ok: true, checked };
}
