// Which compartments the bank has: the config's layout brought to the ledger, at every start and
// on SIGHUP, applied or refused, never ignored.
//
//   config layout ─┐
//   last applied  ─┼─ planLayout (pure) ─▶ { added, retired, changed, reactivated, kept, refused }
//   ledger rows   ─┘                              │ nothing refused
//                                                 ▼
//                            applyLayout: one transaction, each change with its event,
//                            and the config's layout recorded as the last applied (meta)
//
// Presence follows the config: a compartment the config names and the ledger lacks is added; one
// the ledger serves and the config no longer names is retired (its row stays for the history that
// names it, it is never assigned, opened or shown as live again); a retired one the config names
// again is reactivated, with the config's attributes.
//
// Attributes (size, refrigerated, accessible, lock channel) follow a three-way rule, per attribute:
// only what the config changed since it was last applied is applied. The server may resize a free
// compartment (set-compartment); as long as the config still says what it said when last applied,
// the ledger's value (the server's) stays: a restart does not undo it. Once the config changes that
// attribute, the config's new value is applied. With no record of a last applied layout (the first
// start of a lockerd that keeps one), the ledger counts as the last applied: the config wins where
// it differs.
//
// Safe: adding; retiring, changing or reactivating a compartment that holds nothing (no parcel, no
// reservation, no flow, no door being opened right now). Anything else is refused, and then nothing
// of the plan is applied: the bank keeps its old layout whole (start exits 78, SIGHUP logs and keeps
// running).
import type Database from "better-sqlite3";
import { z } from "zod";
import { Size, type CompartmentLayout } from "../config/schema.js";
import type { CompartmentState } from "../domain/compartment.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Compartment, Ledger, ParcelStatus } from "../ledger/ledger.js";

/** Ledger meta key: the config's layout as last applied (JSON, AppliedLayout). */
export const LAYOUT_META = "layout.applied";

/** What the config says of one compartment, and what the ledger stores of it. */
export const LayoutSpec = z.strictObject({
  id: z.string().regex(/^[A-Z][0-9]{2}$/),
  size: Size,
  refrigerated: z.boolean(),
  accessible: z.boolean(),
  lock: z.int().min(0).max(1023),
});
export type LayoutSpec = z.infer<typeof LayoutSpec>;
export type Attributes = Omit<LayoutSpec, "id">;
export const ATTRIBUTES = ["size", "refrigerated", "accessible", "lock"] as const satisfies readonly (keyof Attributes)[];
export type Attribute = (typeof ATTRIBUTES)[number];

const AppliedLayout = z.strictObject({ compartments: z.array(LayoutSpec) });

/** A ledger row as the plan sees it (retired ones included). */
export interface LedgerCompartment extends LayoutSpec {
  state: CompartmentState;
  parcelId: string | null;
  retiredAt: number | null;
}

/** A parcel still in the bank, and where. */
export interface UnderWay {
  id: string;
  status: ParcelStatus;
  compartmentId: string;
}

export interface LayoutState {
  compartments: LedgerCompartment[];
  parcels: UnderWay[];
  /** The config's layout as last applied; undefined when never recorded (or unreadable: see appliedProblem). */
  applied: LayoutSpec[] | undefined;
  /** The meta value was there but not a layout: treated as absent. */
  appliedProblem?: string;
}

export interface LayoutChange {
  id: string;
  from: Partial<Attributes>;
  to: Partial<Attributes>;
}

export interface LayoutRefusal {
  id: string;
  /** What the config asks of it. */
  change: "retire" | "change";
  /** The parcel it holds or is reserved for, if any. */
  parcel: string | null;
  state: CompartmentState;
  /** One line: the compartment, what it holds, what cannot be done. */
  detail: string;
}

export interface LayoutPlan {
  added: LayoutSpec[];
  /** As the ledger has them. */
  retired: LayoutSpec[];
  changed: LayoutChange[];
  reactivated: (LayoutChange & { to: Attributes })[];
  /** Ledger values left as they are by the three-way rule (changed outside the config, e.g. a server resize). */
  kept: { id: string; attribute: Attribute; ledger: Attributes[Attribute]; config: Attributes[Attribute] }[];
  refused: LayoutRefusal[];
  /** The config's layout: recorded as the last applied when the plan is. */
  record: LayoutSpec[];
  /** The record differs from the one stored (so it is written even when nothing else changes). */
  recordChanged: boolean;
}

const UNDER_WAY: readonly ParcelStatus[] = ["reserved", "depositing", "awaiting_recipient", "stored", "collecting"];
const IN_USE: readonly CompartmentState[] = ["reserved", "loading", "occupied", "unloading"];

export function specOf(l: Pick<CompartmentLayout, "id" | "size" | "refrigerated" | "accessible" | "lock">): LayoutSpec {
  return { id: l.id, size: l.size, refrigerated: l.refrigerated, accessible: l.accessible, lock: l.lock };
}

function attributesOf(s: LayoutSpec): Attributes {
  return { size: s.size, refrigerated: s.refrigerated, accessible: s.accessible, lock: s.lock };
}

/**
 * The layout half of a ledger, read with plain SELECTs on any connection (the daemon's, or
 * check-config's read-only one) and any schema version (before migration 7 nothing is retired).
 */
export function readLayoutState(db: Database.Database): LayoutState {
  const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name));
  if (!tables.has("compartments")) return { compartments: [], parcels: [], applied: undefined };
  const columns = new Set((db.pragma("table_info(compartments)") as { name: string }[]).map((c) => c.name));
  const retired = columns.has("retired_at") ? "retired_at" : "NULL AS retired_at";
  const rows = db
    .prepare(`SELECT id, position, size, refrigerated, accessible, state, parcel_id, ${retired} FROM compartments ORDER BY position, id`)
    .all() as Record<string, unknown>[];
  const compartments = rows.map(
    (r): LedgerCompartment => ({
      id: r.id as string,
      size: r.size as Size,
      refrigerated: r.refrigerated === 1,
      accessible: r.accessible === 1,
      lock: r.position as number,
      state: r.state as CompartmentState,
      parcelId: (r.parcel_id as string | null) ?? null,
      retiredAt: (r.retired_at as number | null) ?? null,
    }),
  );
  const parcels = tables.has("parcels")
    ? (
        db
          .prepare(`SELECT id, status, compartment_id FROM parcels WHERE compartment_id IS NOT NULL AND status IN (${UNDER_WAY.map(() => "?").join(", ")})`)
          .all(...UNDER_WAY) as { id: string; status: ParcelStatus; compartment_id: string }[]
      ).map((p) => ({ id: p.id, status: p.status, compartmentId: p.compartment_id }))
    : [];
  const raw = tables.has("meta") ? (db.prepare("SELECT value FROM meta WHERE key = ?").get(LAYOUT_META) as { value: string } | undefined)?.value : undefined;
  if (raw === undefined) return { compartments, parcels, applied: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  const applied = AppliedLayout.safeParse(parsed);
  if (!applied.success) return { compartments, parcels, applied: undefined, appliedProblem: `meta ${LAYOUT_META} is not a layout: the ledger counts as the last applied` };
  return { compartments, parcels, applied: applied.data.compartments };
}

/** Why a compartment cannot be retired or changed now, or undefined when it can. */
function inUse(c: LedgerCompartment, parcels: readonly UnderWay[], busy: ReadonlySet<string>): { parcel: string | null; why: string } | undefined {
  const parcel = c.parcelId ?? parcels.find((p) => p.compartmentId === c.id)?.id ?? null;
  const status = parcel === null ? undefined : parcels.find((p) => p.id === parcel)?.status;
  if (parcel !== null) {
    const what = c.state === "reserved" || status === "reserved" ? `is reserved for parcel ${parcel}` : `holds parcel ${parcel}`;
    return { parcel, why: `${what} (${status ?? c.state})` };
  }
  if (IN_USE.includes(c.state)) return { parcel: null, why: `is ${c.state}` };
  if (busy.has(c.id)) return { parcel: null, why: "has its door being opened right now" };
  return undefined;
}

function describeAttributes(a: Partial<Attributes>): string {
  return ATTRIBUTES.filter((k) => a[k] !== undefined)
    .map((k) => (k === "size" ? `size ${a.size}` : k === "lock" ? `lock ${a.lock}` : `${k} ${String(a[k])}`))
    .join(", ");
}

function describeChange(c: LayoutChange): string {
  return ATTRIBUTES.filter((k) => c.to[k] !== undefined)
    .map((k) => `${k} ${String(c.from[k])} → ${String(c.to[k])}`)
    .join(", ");
}

/**
 * The plan that brings the ledger to the config: pure. `applied` undefined = no record: the
 * ledger counts as the last applied layout. `busy` = compartments whose door is being opened now
 * (the running bank's actuation queue): in use, like one holding a parcel.
 */
export function planLayout(
  config: readonly LayoutSpec[],
  applied: readonly LayoutSpec[] | undefined,
  ledger: { compartments: readonly LedgerCompartment[]; parcels: readonly UnderWay[] },
  busy: ReadonlySet<string> = new Set(),
): LayoutPlan {
  const rows = new Map(ledger.compartments.map((c) => [c.id, c]));
  const last = applied && new Map(applied.map((s) => [s.id, s]));
  const wanted = new Set(config.map((s) => s.id));
  const plan: LayoutPlan = { added: [], retired: [], changed: [], reactivated: [], kept: [], refused: [], record: config.map((s) => ({ ...s })), recordChanged: false };
  /** Lock channel each compartment will be served on once the plan is applied. */
  const locks = new Map<string, number>();

  for (const want of config) {
    const row = rows.get(want.id);
    if (!row) {
      plan.added.push({ ...want });
      locks.set(want.id, want.lock);
      continue;
    }
    if (row.retiredAt !== null) {
      const from: Partial<Attributes> = {};
      for (const k of ATTRIBUTES) if (row[k] !== want[k]) Object.assign(from, { [k]: row[k] });
      const held = inUse(row, ledger.parcels, busy);
      if (held) plan.refused.push({ id: row.id, change: "change", parcel: held.parcel, state: row.state, detail: `${row.id} (retired) ${held.why}: it cannot be brought back` });
      else plan.reactivated.push({ id: want.id, from, to: attributesOf(want) });
      locks.set(want.id, want.lock);
      continue;
    }
    // Three-way, per attribute: the config's value only where the config changed it since last applied.
    const before = last ? last.get(want.id) : row;
    const from: Partial<Attributes> = {};
    const to: Partial<Attributes> = {};
    for (const k of ATTRIBUTES) {
      const configChanged = before === undefined || before[k] !== want[k];
      if (!configChanged) {
        if (row[k] !== want[k]) plan.kept.push({ id: want.id, attribute: k, ledger: row[k], config: want[k] });
        continue;
      }
      if (row[k] !== want[k]) {
        Object.assign(from, { [k]: row[k] });
        Object.assign(to, { [k]: want[k] });
      }
    }
    locks.set(want.id, to.lock ?? row.lock);
    if (!Object.keys(to).length) continue;
    const change = { id: want.id, from, to };
    const held = inUse(row, ledger.parcels, busy);
    if (held) plan.refused.push({ id: row.id, change: "change", parcel: held.parcel, state: row.state, detail: `${row.id} ${held.why}: ${describeChange(change)} cannot be applied` });
    else plan.changed.push(change);
  }

  for (const row of ledger.compartments) {
    if (row.retiredAt !== null || wanted.has(row.id)) continue;
    const held = inUse(row, ledger.parcels, busy);
    if (held) plan.refused.push({ id: row.id, change: "retire", parcel: held.parcel, state: row.state, detail: `${row.id} ${held.why}: it cannot be removed from the bank` });
    else plan.retired.push({ id: row.id, ...attributesOf(row) });
  }

  // A kept lock channel (three-way) must not end up shared with one the config gives another compartment.
  const byLock = new Map<number, string[]>();
  for (const [id, lock] of locks) byLock.set(lock, [...(byLock.get(lock) ?? []), id]);
  for (const [lock, ids] of byLock) {
    if (ids.length < 2) continue;
    const row = rows.get(ids[0]!);
    plan.refused.push({
      id: ids.join(", "),
      change: "change",
      parcel: null,
      state: row?.state ?? "free",
      detail: `${ids.join(" and ")} would share lock channel ${lock}: give each its own lock in the config`,
    });
  }

  plan.recordChanged = applied === undefined || JSON.stringify(applied) !== JSON.stringify(plan.record);
  return plan;
}

/** Whether the plan changes any compartment. */
export function layoutChanges(plan: LayoutPlan): number {
  return plan.added.length + plan.retired.length + plan.changed.length + plan.reactivated.length;
}

/** One line per refusal, for a log, stderr or check-config. */
export function refusalMessage(plan: LayoutPlan): string {
  return `layout change refused, nothing applied: ${plan.refused.map((r) => r.detail).join("; ")}. Put it back in the config as it was, or empty it first, then try again`;
}

/** One line per item of the plan (check-config, logs). */
export function describePlan(plan: LayoutPlan): string[] {
  return [
    ...plan.added.map((a) => `added        ${a.id}: ${describeAttributes(attributesOf(a))}`),
    ...plan.retired.map((r) => `retired      ${r.id} (was ${describeAttributes(attributesOf(r))})`),
    ...plan.changed.map((c) => `changed      ${c.id}: ${describeChange(c)}`),
    ...plan.reactivated.map((r) => `reactivated  ${r.id}: ${describeAttributes(r.to)}`),
    ...plan.kept.map((k) => `kept         ${k.id}: ${k.attribute} ${String(k.ledger)} (changed outside the config, e.g. by the server; the config still says ${String(k.config)}, as when last applied)`),
    ...plan.refused.map((r) => `refused      ${r.id}: ${r.detail}${r.parcel ? ` [parcel ${r.parcel}]` : ""}`),
  ];
}

/** Plain data of a plan for a structured log line. */
export function planSummary(plan: LayoutPlan): Record<string, unknown> {
  return {
    added: plan.added.map((a) => a.id),
    retired: plan.retired.map((r) => r.id),
    changed: plan.changed,
    reactivated: plan.reactivated.map((r) => r.id),
    ...(plan.kept.length ? { kept: plan.kept } : {}),
    ...(plan.refused.length ? { refused: plan.refused } : {}),
  };
}

const columnsOf = (a: Partial<Attributes>): Partial<Compartment> => {
  const { lock, ...rest } = a;
  return { ...rest, ...(lock === undefined ? {} : { position: lock }) };
};

/**
 * Apply a plan with nothing refused: every change and its event in one transaction, with the
 * config's layout recorded as the last applied. Each compartment retired or changed is checked
 * again inside the transaction (still holding nothing), else nothing is applied. Returns whether
 * anything was written. Throws LockerError busy for a plan with refusals; storage when the disk
 * refuses the write.
 */
export function applyLayout(ledger: Ledger, plan: LayoutPlan, now: number): boolean {
  if (plan.refused.length) throw new LockerError(ErrorCode.Busy, refusalMessage(plan), { refused: plan.refused });
  if (!layoutChanges(plan) && !plan.recordChanged) return false;
  const actor = "config";
  ledger.transact((tx) => {
    const state = readLayoutState(ledger.db);
    const rows = new Map(state.compartments.map((c) => [c.id, c]));
    const stillFree = (id: string): void => {
      const row = rows.get(id);
      const held = row && inUse(row, state.parcels, new Set());
      if (!row || held) throw new LockerError(ErrorCode.Busy, `${id} ${held?.why ?? "is gone"}: layout not applied`, { compartment: id });
    };
    for (const r of plan.retired) {
      stillFree(r.id);
      tx.updateCompartment(r.id, { retiredAt: now });
      tx.event({ type: "compartment.retired", compartment: r.id, actor, data: attributesOf(r) });
    }
    for (const c of plan.changed) {
      stillFree(c.id);
      tx.updateCompartment(c.id, columnsOf(c.to));
      tx.event({ type: "compartment.changed", compartment: c.id, actor, data: { from: c.from, to: c.to } });
    }
    for (const r of plan.reactivated) {
      stillFree(r.id);
      tx.updateCompartment(r.id, { ...columnsOf(r.to), retiredAt: null, since: now });
      tx.event({ type: "compartment.reactivated", compartment: r.id, actor, data: { from: r.from, to: r.to } });
    }
    for (const a of plan.added) {
      tx.insertCompartment({ id: a.id, position: a.lock, size: a.size, refrigerated: a.refrigerated, accessible: a.accessible, since: now });
      tx.event({ type: "compartment.added", compartment: a.id, actor, data: attributesOf(a) });
    }
    tx.setMeta(LAYOUT_META, JSON.stringify({ compartments: plan.record }));
  });
  return true;
}

/**
 * The compartments the bank serves: the ledger's live ones, in the config's order, with the
 * ledger's attributes (what assignment reads; a server resize the three-way rule kept) and the
 * config's naming (keypad number, temperature bounds). One the config does not name (its
 * retirement could not be written: a full disk) is still served, named by its id.
 */
export function liveLayout(configured: readonly CompartmentLayout[], live: readonly Compartment[]): CompartmentLayout[] {
  const order = new Map(configured.map((l, i) => [l.id, i]));
  const byId = new Map(configured.map((l) => [l.id, l]));
  return [...live]
    .sort((a, b) => (order.get(a.id) ?? Infinity) - (order.get(b.id) ?? Infinity) || a.position - b.position)
    .map((c) => {
      const attributes = { size: c.size, refrigerated: c.refrigerated, accessible: c.accessible, lock: c.position };
      const l = byId.get(c.id);
      if (l) return { ...l, ...attributes };
      return { id: c.id, column: c.id.slice(0, 1), row: Number(c.id.slice(1)), keypadNumber: c.id, ...attributes };
    });
}
