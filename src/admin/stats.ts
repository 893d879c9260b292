// `lockerctl stats`: what a facilities team asks of a bank, from a few read-only aggregate queries
// over the ledger (no event is decoded in JS), so a year of history stays well under a second.
//
//   parcels      (deposited_at, closed_at, status) ─▶ occupancy, dwell, retrieval, busy hours, demand
//   events       one grouped scan of the window    ─▶ refusals, rejected codes, lockouts, alarms, faults, retries
//   compartments current state and counters         ─▶ sizes, occupied now, pulses, failed opens
//
// A parcel is "deposited" when its door closed on it (parcels.deposited_at); deposits the courier
// took back (status cancelled) are not traffic and are left out everywhere but occupancy.
import { z } from "zod";
import { SIZES, Size } from "../config/schema.js";
import type { Ledger } from "../ledger/ledger.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const RETRIEVAL_HOURS = [24, 48, 72] as const;
/** Every time zone is a whole number of quarter hours off UTC, so quarter-hour buckets map onto local hours. */
const QUARTER_MS = 900_000;

const count = z.int().min(0);
const share = z.number().min(0).max(1);
const Dwell = z.object({ count, avgMs: z.number().min(0).nullable(), p90Ms: z.number().min(0).nullable() });

export const StatsResult = z.object({
  window: z.object({
    from: z.number(),
    to: z.number(),
    days: z.number(),
    observedFrom: z.number().describe("later of `from` and the ledger's first event: occupancy is measured over [observedFrom, to]"),
  }),
  /** By compartment size. */
  utilization: z.array(z.object({ size: Size, compartments: count, occupied: count, outOfService: count, occupancy: share })),
  /** Deposit (door closed on it) to pickup, for parcels picked up in the window, by compartment size. */
  dwell: z.object({ overall: Dwell, bySize: z.array(Dwell.extend({ size: Size })) }),
  retrieval: z.object({
    parcels: count.describe("deposited in the window"),
    within: z.array(z.object({ hours: z.int(), pickedUp: count, share })),
    pickedUpLater: count,
    removed: count.describe("taken out by staff"),
    waiting: count,
  }),
  hours: z.object({
    clock: z.literal("local"),
    timeZone: z.string(),
    utcOffsetMinutes: z.int(),
    byHour: z.array(z.object({ hour: z.int().min(0).max(23), deposits: count, pickups: count })).length(24),
    top: z.array(z.int().min(0).max(23)).max(3).describe("by deposits + pickups"),
  }),
  security: z.object({
    rejected: z.object({ code: count, pin: count, badge: count, total: count }),
    lockouts: count,
    bruteForceAlarms: count,
    forcedOpenAlarms: count,
  }),
  /** By the size couriers asked for (a parcel given a larger compartment counts as its own size). */
  demand: z.object({
    refused: count,
    bySize: z.array(z.object({ size: Size, deposits: count, refused: count, share, compartments: count, suggested: count })),
  }),
  /** Every compartment, worst first. pulses and failedOpens are lifetime counters; retries and faults are in the window. */
  wear: z.array(
    z.object({ compartment: z.string(), size: Size, state: z.string(), pulses: count, failedOpens: count, retries: count, faults: count }),
  ),
});
export type StatsResult = z.infer<typeof StatsResult>;

interface Window {
  from: number;
  to: number;
}
type Row = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);

export function computeStats(ledger: Ledger, opts: { now: number; days: number }): StatsResult {
  const w: Window = { from: opts.now - opts.days * DAY_MS, to: opts.now };
  const first = ledger.db.prepare("SELECT ts FROM events ORDER BY seq LIMIT 1").get() as { ts: number } | undefined;
  // A bank installed last week was not empty for the rest of a 30-day window: it did not exist.
  const observedFrom = Math.min(w.to, Math.max(w.from, first?.ts ?? w.from));
  const compartments = ledger.compartments();
  const bankSizes = SIZES.filter((s) => compartments.some((c) => c.size === s));
  const ofSize = (size: Size) => compartments.filter((c) => c.size === size);
  const occupiedMs = occupiedBySize(ledger, { from: observedFrom, to: w.to });
  const dwell = dwellBySize(ledger, w);
  const deposits = ledger.db.prepare(DEPOSITS_SQL).all(w) as Row[];
  const total = (key: string) => deposits.reduce((sum, r) => sum + num(r[key]), 0);
  const parcels = total("n");
  const within = RETRIEVAL_HOURS.map((hours, i) => ({ hours, pickedUp: total(`w${i}`), share: parcels ? total(`w${i}`) / parcels : 0 }));
  const events = eventCounts(ledger, w);
  const rejected = (kind?: string) => events("code.rejected", kind);
  return {
    window: { from: w.from, to: w.to, days: opts.days, observedFrom },
    utilization: bankSizes.map((size) => {
      const of = ofSize(size);
      const observedMs = (w.to - observedFrom) * of.length;
      return {
        size,
        compartments: of.length,
        occupied: of.filter((c) => c.state === "occupied" || c.state === "unloading").length,
        outOfService: of.filter((c) => c.state === "fault" || !c.enabled).length,
        occupancy: observedMs > 0 ? Math.min(1, (occupiedMs.get(size) ?? 0) / observedMs) : 0,
      };
    }),
    dwell: { overall: dwell("*"), bySize: bankSizes.map((size) => ({ size, ...dwell(size) })) },
    retrieval: {
      parcels,
      within,
      pickedUpLater: total("picked") - (within.at(-1)?.pickedUp ?? 0),
      removed: total("removed"),
      waiting: total("waiting"),
    },
    hours: busiestHours(ledger, w),
    security: {
      rejected: { code: rejected("code"), pin: rejected("pin"), badge: rejected("badge"), total: rejected() },
      lockouts: events("terminal.locked_out"),
      bruteForceAlarms: events("alarm.brute_force"),
      forcedOpenAlarms: events("alarm.forced_open"),
    },
    demand: demandMix(
      SIZES.filter((s) => bankSizes.includes(s) || events("assignment.failed", s) > 0).map((size) => ({
        size,
        deposits: num(deposits.find((r) => r.size === size)?.n),
        refused: events("assignment.failed", size),
        compartments: ofSize(size).length,
      })),
    ),
    wear: compartments
      .map((c) => ({
        compartment: c.id,
        size: c.size,
        state: c.enabled ? c.state : `${c.state} (disabled)`,
        pulses: c.pulses,
        failedOpens: c.failedOpens,
        retries: events("lock.retried", undefined, c.id),
        faults: events("compartment.fault", undefined, c.id),
      }))
      // Stable: ties stay in bank order.
      .sort((a, b) => b.faults - a.faults || b.failedOpens - a.failedOpens || b.retries - a.retries || b.pulses - a.pulses),
  };
}

/** Occupied ms per compartment size, parcel intervals clipped to the window. */
function occupiedBySize(ledger: Ledger, w: Window): Map<Size, number> {
  const rows = ledger.db
    .prepare(
      `SELECT c.size AS size, SUM(MIN(COALESCE(p.closed_at, @to), @to) - MAX(p.deposited_at, @from)) AS ms
       FROM parcels p JOIN compartments c ON c.id = p.compartment_id
       WHERE p.deposited_at IS NOT NULL AND p.deposited_at < @to AND COALESCE(p.closed_at, @to) > @from
       GROUP BY c.size`,
    )
    .all(w) as { size: Size; ms: number }[];
  return new Map(rows.map((r) => [r.size, num(r.ms)]));
}

/** Dwell of the parcels picked up in the window, by compartment size ("*": all). p90 by nearest rank. */
function dwellBySize(ledger: Ledger, w: Window): (size: string) => z.infer<typeof Dwell> {
  // The ceil(0.9 n)-th smallest, the ceiling in integers: (9n + 9) / 10.
  const rows = ledger.db
    .prepare(
      `WITH d AS (
         SELECT c.size AS size, p.closed_at - p.deposited_at AS ms FROM parcels p JOIN compartments c ON c.id = p.compartment_id
         WHERE p.status = 'picked_up' AND p.closed_at BETWEEN @from AND @to AND p.deposited_at IS NOT NULL),
       a AS (SELECT size, ms FROM d UNION ALL SELECT '*', ms FROM d),
       r AS (SELECT size, ms, ROW_NUMBER() OVER (PARTITION BY size ORDER BY ms) AS rn, COUNT(*) OVER (PARTITION BY size) AS n FROM a)
       SELECT size, COUNT(*) AS n, AVG(ms) AS avg, MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN ms END) AS p90 FROM r GROUP BY size`,
    )
    .all(w) as { size: string; n: number; avg: number; p90: number }[];
  return (size) => {
    const r = rows.find((x) => x.size === size);
    return r ? { count: r.n, avgMs: Math.round(r.avg), p90Ms: r.p90 } : { count: 0, avgMs: null, p90Ms: null };
  };
}

/** Parcels deposited in the window by asked size, with their outcome as of `to` (one closed later was still waiting then). */
const DEPOSITS_SQL = `
  WITH p AS (
    SELECT size, deposited_at AS dep, CASE WHEN closed_at <= @to THEN closed_at END AS closed,
      CASE WHEN closed_at <= @to THEN status END AS outcome
    FROM parcels WHERE deposited_at BETWEEN @from AND @to AND status <> 'cancelled')
  SELECT size, COUNT(*) AS n, ${RETRIEVAL_HOURS.map((h, i) => `SUM(outcome = 'picked_up' AND closed - dep <= ${h * HOUR_MS}) AS w${i}`).join(", ")},
    SUM(outcome = 'picked_up') AS picked, SUM(outcome = 'removed') AS removed, SUM(closed IS NULL) AS waiting
  FROM p GROUP BY size`;

/** One scan of the window's events, counted by type, compartment and (for two types) a data field. */
function eventCounts(ledger: Ledger, w: Window): (type: string, detail?: string, compartment?: string) => number {
  const rows = ledger.db
    .prepare(
      `SELECT type, compartment, CASE type WHEN 'code.rejected' THEN json_extract(data, '$.kind')
         WHEN 'assignment.failed' THEN json_extract(data, '$.size') END AS detail, COUNT(*) AS n
       FROM events
       WHERE ts BETWEEN @from AND @to AND type IN ('code.rejected', 'terminal.locked_out', 'alarm.brute_force', 'alarm.forced_open',
         'assignment.failed', 'compartment.fault', 'lock.retried')
       GROUP BY type, compartment, detail`,
    )
    .all(w) as { type: string; compartment: string | null; detail: string | null; n: number }[];
  return (type, detail, compartment) =>
    rows
      .filter((r) => r.type === type && (detail === undefined || r.detail === detail) && (compartment === undefined || r.compartment === compartment))
      .reduce((sum, r) => sum + r.n, 0);
}

function busiestHours(ledger: Ledger, w: Window): StatsResult["hours"] {
  const rows = ledger.db
    .prepare(
      `SELECT 'd' AS kind, deposited_at / ${QUARTER_MS} AS q, COUNT(*) AS n FROM parcels
         WHERE deposited_at BETWEEN @from AND @to AND status <> 'cancelled' GROUP BY q
       UNION ALL
       SELECT 'p', closed_at / ${QUARTER_MS} AS q, COUNT(*) FROM parcels
         WHERE status = 'picked_up' AND closed_at BETWEEN @from AND @to GROUP BY q`,
    )
    .all(w) as { kind: "d" | "p"; q: number; n: number }[];
  const byHour = Array.from({ length: 24 }, (_, hour) => ({ hour, deposits: 0, pickups: 0 }));
  for (const r of rows) {
    const h = byHour[new Date(r.q * QUARTER_MS).getHours()]!;
    if (r.kind === "d") h.deposits += r.n;
    else h.pickups += r.n;
  }
  const busy = (h: (typeof byHour)[number]) => h.deposits + h.pickups;
  const top = byHour.filter((h) => busy(h) > 0).sort((a, b) => busy(b) - busy(a) || a.hour - b.hour);
  return {
    clock: "local",
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    utcOffsetMinutes: 0 - new Date(w.to).getTimezoneOffset(), // 0 - x: never -0
    byHour,
    top: top.slice(0, 3).map((h) => h.hour),
  };
}

/**
 * The size mix the window's traffic would have needed. Rule: keep the bank's total number of
 * compartments and share it out in proportion to demand (deposits + refusals) by largest remainder
 * (Hamilton), with at least 1 for every size that saw demand; ties go to the smaller size. A size
 * nobody asked for gets 0: "not needed in this window", not "remove them all". No demand at all:
 * the suggestion is the bank as it is.
 */
function demandMix(rows: { size: Size; deposits: number; refused: number; compartments: number }[]): StatsResult["demand"] {
  const demand = rows.map((r) => r.deposits + r.refused);
  const sum = demand.reduce((a, b) => a + b, 0);
  const seats = rows.reduce((a, r) => a + r.compartments, 0);
  const quota = demand.map((d) => (sum ? (seats * d) / sum : 0));
  const alloc = sum ? demand.map((d, i) => (d > 0 ? Math.max(1, Math.floor(quota[i]!)) : 0)) : rows.map((r) => r.compartments);
  const slack = (i: number) => quota[i]! - alloc[i]!;
  /** The first index passing `ok` with the largest (sign 1) or smallest (sign -1) slack. */
  const pick = (ok: (i: number) => boolean, sign: 1 | -1): number =>
    alloc.reduce((best, _, i) => (ok(i) && (best < 0 || sign * (slack(i) - slack(best)) > 0) ? i : best), -1);
  // Short of the total: to the largest remainder. Over it (the minimum of 1 did that): from the most
  // over-served size that keeps 1. Fewer compartments than sizes in demand: the minimum cannot hold.
  for (let left = sum ? seats - alloc.reduce((a, b) => a + b, 0) : 0; left !== 0; left += left > 0 ? -1 : 1) {
    const i = left > 0 ? pick((j) => demand[j]! > 0, 1) : pick((j) => alloc[j]! > 1, -1);
    if (i < 0) break;
    alloc[i]! += left > 0 ? 1 : -1;
  }
  return {
    refused: rows.reduce((a, r) => a + r.refused, 0),
    bySize: rows.map((r, i) => ({ ...r, share: sum ? demand[i]! / sum : 0, suggested: alloc[i]! })),
  };
}

// ── human output ───────────────────────────────────────────────────────────

type Tone = "head" | "bad" | "warn" | "dim";
type Seg = string | { text: string; tone: Tone };
const ANSI: Record<Tone, string> = { head: "\x1b[1m", bad: "\x1b[31m", warn: "\x1b[33m", dim: "\x1b[2m" };
const SPARK = "▁▂▃▄▅▆▇█";

const tone = (text: string, t: Tone | false | undefined): Seg => (t ? { text, tone: t } : text);
const textOf = (s: Seg): string => (typeof s === "string" ? s : s.text);
const pct = (x: number, digits = 0): string => `${(x * 100).toFixed(digits)}%`;

/** "3h 12m", "2d 4h", "45s"; "–" for no value. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return "–";
  if (ms < 60_000) return `${Math.round(ms / 1000)}s`;
  const m = Math.round(ms / 60_000);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  return h < 24 ? `${h}h ${m % 60}m` : `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Columns two spaces apart; `align` has an "l" or "r" per column. */
function table(head: string[], rows: Seg[][], align: string): Seg[][] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => textOf(r[i] ?? "").length)));
  const line = (cells: Seg[]): Seg[] =>
    cells.flatMap((c, i) => {
      const pad = " ".repeat(widths[i]! - textOf(c).length);
      return ["  ", ...(align[i] === "r" ? [pad, c] : [c, pad])];
    });
  return [line(head.map((h) => tone(h, "dim"))), ...rows.map(line)];
}

/** A count, coloured when it is not zero. */
const flag = (v: number, t: Tone): Seg => tone(String(v), v > 0 && t);

export function formatStats(s: StatsResult, opts: { width: number; color: boolean }): string {
  const when = dateFormat(s.hours.timeZone);
  const { window: w } = s;
  const lines: Seg[][] = [
    [tone(`Locker stats: last ${w.days} days`, "head"), `  ${when(w.from)} → ${when(w.to)}`],
    ...(w.observedFrom > w.from ? [[tone(`  (ledger starts ${when(w.observedFrom)}: occupancy measured from then)`, "dim")]] : []),
    ...[sizeLines(s), retrievalLines(s), hourLines(s), securityLines(s), demandLines(s), wearLines(s)].flatMap((section) => [[], ...section]),
  ];
  return lines.map((line) => render(line, opts)).join("\n");
}

function sizeLines(s: StatsResult): Seg[][] {
  const rows: Seg[][] = s.utilization.map((u) => {
    const d = s.dwell.bySize.find((x) => x.size === u.size);
    const occupancy = tone(pct(u.occupancy, 1), u.occupancy >= 0.9 ? "bad" : u.occupancy >= 0.75 && "warn");
    const dwell = [String(d?.count ?? 0), formatDuration(d?.avgMs ?? null), formatDuration(d?.p90Ms ?? null)];
    return [u.size, String(u.compartments), String(u.occupied), flag(u.outOfService, "bad"), occupancy, ...dwell];
  });
  const sum = (f: (u: StatsResult["utilization"][number]) => number) => s.utilization.reduce((a, u) => a + f(u), 0);
  const total = sum((u) => u.compartments);
  const o = s.dwell.overall;
  const occupancy = total ? pct(sum((u) => u.occupancy * u.compartments) / total, 1) : "";
  const counts = [total, sum((u) => u.occupied), sum((u) => u.outOfService)].map(String);
  rows.push(["all", ...counts, occupancy, String(o.count), formatDuration(o.avgMs), formatDuration(o.p90Ms)]);
  const head = ["size", "total", "in use", "out of svc", "occupancy", "pickups", "avg dwell", "p90 dwell"];
  return [[tone("Compartments and dwell, by compartment size", "head")], ...table(head, rows, "lrrrrrrr")];
}

function retrievalLines(s: StatsResult): Seg[][] {
  const r = s.retrieval;
  return [
    [tone(`Retrieval of ${r.parcels} parcel${r.parcels === 1 ? "" : "s"} deposited in the window`, "head")],
    r.within.flatMap((x, i) => [i ? "    " : "  ", `within ${x.hours}h `, tone(pct(x.share), i === 2 && x.share < 0.9 && "warn"), ` (${x.pickedUp})`]),
    [`  later ${r.pickedUpLater} · removed by staff `, flag(r.removed, "warn"), ` · still waiting ${r.waiting}`],
  ];
}

function hourLines(s: StatsResult): Seg[][] {
  const h = s.hours;
  const abs = Math.abs(h.utcOffsetMinutes);
  const offset = `UTC${h.utcOffsetMinutes < 0 ? "-" : "+"}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  const max = Math.max(1, ...h.byHour.map((x) => Math.max(x.deposits, x.pickups)));
  const spark = (v: number) => (v ? SPARK[Math.min(7, Math.ceil((v / max) * 8) - 1)]! : "·");
  const top = h.top.map((hour) => {
    const x = h.byHour[hour]!;
    return `${String(hour).padStart(2, "0")}:00 (${x.deposits} in, ${x.pickups} out)`;
  });
  return [
    [tone(`Busiest hours (local time, ${h.timeZone}, ${offset})`, "head")],
    ["            0     6     12    18   23"],
    ["  deposits  ", h.byHour.map((x) => spark(x.deposits)).join("")],
    ["  pickups   ", h.byHour.map((x) => spark(x.pickups)).join("")],
    [`  top: ${top.length ? top.join(" · ") : "no traffic"}`],
  ];
}

function securityLines(s: StatsResult): Seg[][] {
  const { rejected: r, lockouts, bruteForceAlarms, forcedOpenAlarms } = s.security;
  return [
    [tone("Security", "head")],
    ["  failed attempts ", flag(r.total, "warn"), `: code ${r.code}, PIN ${r.pin}, badge ${r.badge}`],
    ["  lockouts ", flag(lockouts, "warn"), " · brute-force alarms ", flag(bruteForceAlarms, "bad")],
    ["  doors forced open ", flag(forcedOpenAlarms, "bad")],
  ];
}

function demandLines(s: StatsResult): Seg[][] {
  const rows = s.demand.bySize.map((x): Seg[] => {
    const suggested = tone(String(x.suggested), x.suggested !== x.compartments && "warn");
    return [x.size, String(x.deposits), flag(x.refused, "bad"), pct(x.share), String(x.compartments), suggested];
  });
  return [
    [tone("Demand by parcel size: deposits + refused (no size free)", "head")],
    ...table(["size", "deposits", "refused", "share", "now", "suggested"], rows, "lrrrrr"),
    [tone("  suggested: the same number of compartments, shared in proportion to demand", "dim")],
  ];
}

const WEAR_ROWS = 8;

function wearLines(s: StatsResult): Seg[][] {
  const rows = s.wear.slice(0, WEAR_ROWS).map((x): Seg[] => {
    const state = tone(x.state, x.state.startsWith("fault") && "bad");
    return [x.compartment, x.size, state, String(x.pulses), flag(x.failedOpens, "bad"), flag(x.retries, "warn"), flag(x.faults, "bad")];
  });
  return [
    [tone(`Lock wear, worst first${s.wear.length > WEAR_ROWS ? ` (top ${WEAR_ROWS} of ${s.wear.length})` : ""}`, "head")],
    ...table(["lock", "size", "state", "pulses", "failed opens", "retries", "faults"], rows, "lllrrrr"),
  ];
}

/** "2026-11-03 09:00" in the daemon's zone (the hours were bucketed there), or here if it is unknown. */
function dateFormat(timeZone: string): (ts: number) => string {
  const d2 = "2-digit";
  const options: Intl.DateTimeFormatOptions = { year: "numeric", month: d2, day: d2, hour: d2, minute: d2, hourCycle: "h23" };
  let f: Intl.DateTimeFormat;
  try {
    f = new Intl.DateTimeFormat("en-CA", { ...options, timeZone });
  } catch {
    f = new Intl.DateTimeFormat("en-CA", options);
  }
  return (ts) => f.format(ts).replace(",", "");
}

/** One line, cut to `width` visible characters, with colour codes only when asked. */
function render(line: Seg[], opts: { width: number; color: boolean }): string {
  let room = opts.width;
  let text = "";
  for (const seg of line) {
    if (room <= 0) break;
    const cut = textOf(seg).slice(0, room);
    room -= cut.length;
    text += opts.color && typeof seg !== "string" && cut ? `${ANSI[seg.tone]}${cut}\x1b[0m` : cut;
  }
  return text.trimEnd();
}
