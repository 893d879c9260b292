// `lockerctl watch`: the technician's full-screen live view of the bank, as a pure function of a
// model that the admin stream (StreamItem lines) keeps up to date. No I/O here.
//
//   header   device, clock, connection state
//   grid     compartments (src/cli/grid.ts), then the legend
//   alarms   open alarms with their age
//   events   the last ledger events, alarm.* and compartment.fault highlighted
//   footer   keys, and what did not fit
//
// On a short terminal the events pane goes first, then the legend, then alarms beyond the first,
// then grid rows; header and footer stay. Every daemon string is cleaned (grid.ts fitLine).
import type { z } from "zod";
import type { Alarm, CompartmentRow, LedgerEventView, StreamItem } from "../admin/protocol.js";
import { fit, fitLine, layoutGrid, legend, textWidth, type Seg } from "./grid.js";

export type LedgerEvent = z.infer<typeof LedgerEventView>;

export type WatchConnection = { state: "connecting" } | { state: "live" } | { state: "lost"; since: number; reason: string };

export interface WatchModel {
  device: string;
  /** Wall clock (ms) for the header and the ages; the caller sets it on each tick. */
  now: number;
  /** Minutes east of UTC for displayed times; default: this host's zone. */
  utcOffsetMin?: number;
  connection: WatchConnection;
  compartments: CompartmentRow[];
  alarms: Alarm[];
  /** Oldest first, at most RECENT_EVENTS. */
  events: LedgerEvent[];
}

export const RECENT_EVENTS = 50;

const HEADER_STYLE = "7";
const CONNECTION_STYLE: Record<WatchConnection["state"], string> = { live: "1;7;32", connecting: "1;7;33", lost: "1;7;31" };
const ALARM_STYLE = "1;31";
const RULE_STYLE = "2";
const MAX_KIND = 20;
const MAX_TYPE = 26;
const MAX_REASON = 30;
const ENLARGE = "; enlarge the terminal";

// ── the model ───────────────────────────────────────────────────────────────

export function emptyWatch(device: string, now: number): WatchModel {
  return { device, now, connection: { state: "connecting" }, compartments: [], alarms: [], events: [] };
}

/** One stream item folded into the model; returns a new model (the old one is not changed). */
export function applyStream(model: WatchModel, item: StreamItem): WatchModel {
  switch (item.kind) {
    case "compartments":
      return { ...model, compartments: item.compartments, alarms: item.alarms };
    case "event":
      // Streams deliver at least once: an event already held is not added again.
      if (model.events.some((e) => e.seq === item.event.seq)) return model;
      return { ...model, events: [...model.events, item.event].slice(-RECENT_EVENTS) };
    case "door":
      if (!model.compartments.some((c) => c.id === item.compartment)) return model;
      return { ...model, compartments: model.compartments.map((c) => (c.id === item.compartment ? { ...c, door: item.door } : c)) };
    case "chunk":
    case "finger":
      return model; // a backup's or an enrolment's, never on a watch stream
  }
}

// ── formatting ──────────────────────────────────────────────────────────────

/** Elapsed time, compact: 45s, 3m07s, 2h05m, 3d04h. */
export function formatAge(ms: number): string {
  const s = Number.isFinite(ms) ? Math.max(0, Math.floor(ms / 1000)) : 0;
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${two(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${two(m % 60)}m`;
  return `${Math.floor(h / 24)}d${two(h % 24)}h`;
}

/** "YYYY-MM-DD HH:MM:SS" in the model's zone, or "?" for a time a Date cannot hold. */
function stamp(ts: number, offsetMin: number | undefined): string {
  if (!Number.isFinite(ts) || Math.abs(ts) > 8.64e15) return "?";
  const offset = offsetMin ?? -new Date(ts).getTimezoneOffset();
  const shifted = ts + offset * 60_000;
  if (Math.abs(shifted) > 8.64e15) return "?";
  return new Date(shifted).toISOString().slice(0, 19).replace("T", " ");
}

/** An event's time: the clock alone today, with the date on another day. */
function eventTime(ts: number, m: WatchModel): string {
  const at = stamp(ts, m.utcOffsetMin);
  return at.slice(0, 10) === stamp(m.now, m.utcOffsetMin).slice(0, 10) ? at.slice(11) : at.slice(5, 16);
}

const isAlarmEvent = (type: string) => type.startsWith("alarm.") || type === "compartment.fault";

const rule = (title: string, width: number, style: string): Seg[] => [[`── ${title} `, style], ["─".repeat(Math.max(0, width)), RULE_STYLE]];

/** Device, clock and connection; on a narrow terminal the title goes first, then the date, then the clock. */
function header(m: WatchModel, width: number): Seg[] {
  const c = m.connection;
  const reason = c.state === "lost" ? Array.from(c.reason).slice(0, MAX_REASON).join("") : "";
  const conn: Seg = [c.state === "live" ? " live " : c.state === "connecting" ? " connecting… " : ` LOST ${formatAge(m.now - c.since)}: ${reason} `, CONNECTION_STYLE[c.state]];
  const at = stamp(m.now, m.utcOffsetMin);
  const device = m.device || "…";
  const variants: [left: string, clock: string][] = [
    [` lockerctl watch  ${device}`, ` ${at} `],
    [` ${device}`, ` ${at} `],
    [` ${device}`, ` ${at.slice(11)} `],
    [` ${device}`, ""],
  ];
  for (const [i, [left, clock]] of variants.entries()) {
    const room = width - textWidth(clock) - textWidth(conn[0]);
    const last = i === variants.length - 1; // only the device alone may be clipped
    if (room > textWidth(left) || (last && room >= 4)) return [[fit(left, room), HEADER_STYLE], [clock, HEADER_STYLE], conn];
  }
  return [conn];
}

/** Alarm lines, newest first: age, kind, compartment, detail. */
function alarmLines(m: WatchModel): Seg[][] {
  const list = [...m.alarms].sort((a, b) => b.since - a.since);
  const ages = list.map((a) => formatAge(m.now - a.since));
  const ageW = Math.max(0, ...ages.map((a) => a.length));
  const kindW = Math.min(MAX_KIND, Math.max(0, ...list.map((a) => textWidth(a.kind))));
  return list.map((a, i) => [
    [` ${ages[i]!.padStart(ageW)}  `],
    [fit(a.kind, kindW), ALARM_STYLE],
    [`  ${(a.compartment ?? "-").padEnd(3)}  `],
    [a.detail],
  ]);
}

/** Event lines, oldest first: seq, time, type, compartment, actor. */
function eventLines(m: WatchModel, events: readonly LedgerEvent[]): Seg[][] {
  const seqW = Math.max(0, ...events.map((e) => String(e.seq).length));
  const typeW = Math.min(MAX_TYPE, Math.max(0, ...events.map((e) => textWidth(e.type))));
  return events.map((e) => {
    const hot = isAlarmEvent(e.type);
    return [
      [` ${String(e.seq).padStart(seqW)} `, RULE_STYLE],
      [`${eventTime(e.ts, m)} `, hot ? ALARM_STYLE : RULE_STYLE],
      [fit(e.type, typeW), hot ? ALARM_STYLE : undefined],
      [` ${(e.compartment ?? "-").padEnd(3)} `],
      [e.actor ?? "", hot ? ALARM_STYLE : undefined],
    ];
  });
}

const count = (n: number, what: string) => (n > 0 ? `${n} ${what}${n === 1 ? "" : "s"}` : "");

// ── the screen ──────────────────────────────────────────────────────────────

/**
 * The whole screen: exactly `height` lines of exactly `width` columns, joined by "\n". Draw each
 * line at its row (cursor addressing), as the sim does: a full-width line must not be followed by
 * a wrap.
 */
export function renderWatch(model: WatchModel, opts: { width: number; height: number; color: boolean }): string {
  const width = Math.max(0, Math.floor(opts.width));
  const height = Math.max(0, Math.floor(opts.height));
  if (height === 0) return "";
  const grid = layoutGrid(model.compartments, width);
  const gridRows: Seg[][] = model.compartments.length ? grid.rows : [[["waiting for the first compartment snapshot…", RULE_STYLE]]];
  const alarms = alarmLines(model);
  const alarmTitle = rule(alarms.length ? `${alarms.length} open alarm${alarms.length === 1 ? "" : "s"}` : "no open alarms", width, alarms.length ? ALARM_STYLE : RULE_STYLE);
  const key = legend(width);

  // Rows by priority: header and footer, the first alarm, the grid, the other alarms, the legend,
  // then whatever is left for the events.
  let free = Math.max(0, height - 2);
  const take = (want: number) => {
    const n = Math.max(0, Math.min(want, free));
    free -= n;
    return n;
  };
  const alarmMin = take(alarms.length ? 2 : 1); // the title, and the newest alarm
  const gridShown = take(gridRows.length);
  const alarmShown = alarmMin === 2 ? 1 + take(alarms.length - 1) : 0;
  const legendShown = model.compartments.length ? take(key.length) : 0;
  const eventRows = free >= 2 ? take(free) : 0; // the title, and events

  const body: Seg[][] = [...gridRows.slice(0, gridShown), ...key.slice(0, legendShown)];
  if (alarmMin) {
    const shown = alarms.slice(0, alarmShown);
    if (alarmShown < alarms.length && alarmShown > 1) shown[alarmShown - 1] = [[` … and ${alarms.length - alarmShown + 1} more`, ALARM_STYLE]];
    body.push(alarmTitle, ...shown);
  }
  if (eventRows) {
    const recent = model.events.slice(-(eventRows - 1));
    body.push(rule(model.events.length ? "recent events" : "no events yet", width, RULE_STYLE), ...eventLines(model, recent));
  }

  const rowsCut = model.compartments.length ? gridRows.length - gridShown : 0;
  const alarmsCut = alarmShown <= 1 ? alarms.length - alarmShown : 0; // else "… and N more" says it
  const hidden = [
    count(grid.hiddenColumns, "column"),
    count(rowsCut, "row"),
    count(alarmsCut, "alarm"),
    !eventRows && model.events.length ? "events" : "",
  ].filter(Boolean);
  const keys = " q quit";
  let note = hidden.length ? `   hidden: ${hidden.join(", ")}` : "";
  if (note && textWidth(`${keys}${note}${ENLARGE}`) <= width) note += ENLARGE;
  const footer: Seg[] = [[keys], [note, "1;33"]];

  const lines = [header(model, width)];
  if (height >= 2) {
    lines.push(...body.slice(0, height - 2));
    while (lines.length < height - 1) lines.push([]);
    lines.push(footer);
  }
  return lines.map((segs) => fitLine(segs, width, opts.color)).join("\n");
}
