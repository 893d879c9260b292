// Human output for lockerctl: short, fits an 80-column SSH terminal, colour only when asked.
import type { z } from "zod";
import { clean } from "./grid.js";
import type { Alarm, ClockStatus, CompartmentRow, LedgerEventView, RelayTestResult, SelftestResult, SensorsResult, StatusResult, SyncStatus } from "../admin/protocol.js";

export interface Style {
  color: boolean;
}

const CODES = { red: "31", green: "32", yellow: "33", blue: "34", cyan: "36", dim: "2", bold: "1" } as const;
export type Paint = keyof typeof CODES;

export function paint(s: Style, c: Paint, text: string): string {
  return s.color ? `\x1b[${CODES[c]}m${text}\x1b[0m` : text;
}

export { clean } from "./grid.js";

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function time(ts: number): string {
  const d = new Date(ts);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const STATE_COLOR: Record<string, Paint> = { free: "green", reserved: "cyan", loading: "yellow", unloading: "yellow", occupied: "blue", fault: "red" };

function table(rows: string[][], style: Style, colorOf?: (row: number, col: number) => Paint | undefined): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((r, i) =>
      r
        .map((cell, c) => {
          const padded = c === r.length - 1 ? cell : cell.padEnd(widths[c]!);
          if (i === 0) return paint(style, "bold", padded);
          const col = colorOf?.(i - 1, c);
          return col ? paint(style, col, padded) : padded;
        })
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function formatAlarms(alarms: Alarm[], now: number, style: Style): string {
  if (!alarms.length) return paint(style, "green", "no open alarms");
  return alarms
    .map((a) => `${paint(style, "red", a.kind.padEnd(12))} ${(a.compartment ?? "-").padEnd(4)} ${duration(now - a.since).padStart(8)} ago  ${clean(a.detail)}`)
    .join("\n");
}

/** "disk: 1.2 GB free in /var/lib/lockerd" — red and loud when the ledger takes no writes. */
function formatStorage(st: NonNullable<StatusResult["storage"]>, style: Style): string {
  const free = st.freeBytes === null ? "?" : st.freeBytes >= 2 ** 30 ? `${(st.freeBytes / 2 ** 30).toFixed(1)} GB` : `${Math.floor(st.freeBytes / 2 ** 20)} MB`;
  if (st.state === "full") return paint(style, "red", `disk FULL: ${free} free in ${st.path}; the bank refuses what needs a write`);
  if (st.state === "low") return paint(style, "yellow", `disk low: ${free} free in ${st.path} (floor ${Math.floor(st.minFreeBytes / 2 ** 20)} MB)`);
  return `disk: ${free} free in ${st.path}`;
}

/**
 * The clock, right under the header when NTP has not set it (a Pi has no RTC): what it reads, what
 * that means for events, notices and commands. Nothing when synchronized, unless it stepped.
 */
function formatClock(c: ClockStatus, style: Style): string[] {
  const stepped = c.lastStep ? `stepped ${signed(c.lastStep.deltaMs)} at ${time(c.lastStep.at)}` : "";
  if (c.synchronized === "yes") return stepped ? [paint(style, "dim", `clock: synchronized; ${stepped}`)] : [];
  if (c.synchronized === "unknown") {
    return [paint(style, "yellow", `clock: synchronization UNKNOWN (no systemd-timesyncd); reads ${time(c.now)}`), ...(stepped ? [`  ${stepped}`] : [])];
  }
  return [
    paint(style, "red", `CLOCK NOT SYNCHRONIZED (no NTP since boot): reads ${time(c.now)}`),
    `  last synchronized ${c.lastSyncedAt === null ? "never" : time(c.lastSyncedAt)}; events are marked clockUnsynced`,
    "  commands judged against the last synchronized time + uptime",
    "  parcels deposited before this start: notices count from it",
    ...(stepped ? [`  ${stepped}`] : []),
  ];
}

/** "+5d 3h", "-12m 4s": a clock step. */
function signed(ms: number): string {
  return `${ms < 0 ? "-" : "+"}${duration(Math.abs(ms))}`;
}

export function formatStatus(s: StatusResult, style: Style): string {
  const lines = [
    `${paint(style, "bold", s.device)}  lockerd ${s.version}  pid ${s.pid}  up ${duration(s.uptimeMs)}`,
    ...(s.clock ? formatClock(s.clock, style) : []),
    `compartments: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ")}`,
    ...(s.storage ? [formatStorage(s.storage, style)] : []),
    "",
    paint(style, "bold", "devices"),
    ...s.devices.map((d) => `  ${(d.health === "ok" ? paint(style, "green", "ok") : paint(style, "red", d.health)).padEnd(style.color ? 17 : 8)} ${d.name}${d.detail ? `: ${clean(d.detail)}` : ""}`),
    ...(s.temperatures.length
      ? [
          "",
          paint(style, "bold", "temperatures"),
          ...s.temperatures.map((t) => `  ${t.compartment}  ${t.ok && t.celsius !== null ? `${t.celsius.toFixed(1)} °C` : paint(style, "red", "no reading")}`),
        ]
      : []),
    "",
    paint(style, "bold", "sync"),
    s.sync.enabled
      ? `  ${s.sync.connected ? paint(style, "green", "connected") : paint(style, "red", "not connected")} ${s.sync.url ?? ""}  backlog ${s.sync.backlog}  last ack ${s.sync.lastAckAt ? time(s.sync.lastAckAt) : "never"}`
      : `  disabled in config (offline bank); ${s.sync.backlog} events kept for the server, head seq ${s.sync.headSeq}`,
    ...(s.sync.enabled && endpointNote(s.sync) ? [`  ${endpointNote(s.sync).trim()}`] : []),
    ...syncTrouble(s.sync, style).map((l) => `  ${l}`),
    "",
    paint(style, "bold", "alarms"),
    formatAlarms(s.alarms, s.now, style).replace(/^/gm, "  "),
  ];
  return lines.join("\n");
}

/** `lockerctl sync`: the server link in a few lines. */
export function formatSync(s: SyncStatus, style: Style): string {
  if (!s.enabled) return `sync disabled in config: the bank runs offline; ${s.backlog} events kept for the server (head seq ${s.headSeq})`;
  return [
    `server link ${s.connected ? paint(style, "green", "connected") : paint(style, "red", "NOT connected")} ${s.url ?? ""}${endpointNote(s)}`,
    `backlog ${s.backlog} events, head seq ${s.headSeq}, last ack ${s.lastAckAt ? time(s.lastAckAt) : "never"}`,
    ...(s.instance ? [`instance ${clean(s.instance)}`] : []),
    ...syncTrouble(s, style),
  ].join("\n");
}

/** A duplicate identity, else the link's last error: nothing while all is well. */
function syncTrouble(s: SyncStatus, style: Style): string[] {
  const d = s.duplicateIdentity;
  if (d) {
    return [
      paint(style, "red", `DUPLICATE IDENTITY since ${time(d.since)}: another bank, same site/device`),
      `(${clean(d.evidence)}, ${d.takeovers} takeovers); retrying every few minutes`,
      "give each bank its own device.site / device.id",
    ];
  }
  return s.lastError ? wrap(`last error: ${clean(s.lastError)}`, 76).map((l, i) => paint(style, s.connected ? "yellow" : "red", i ? `  ${l}` : l)) : [];
}

/** " (MQTT 3.1.1, endpoint 2 of 3)": what differs from one MQTT 5 broker; nothing when nothing does. */
function endpointNote(s: SyncStatus): string {
  const parts = [...(s.protocol === "3.1.1" ? ["MQTT 3.1.1"] : []), ...(s.endpoints && s.endpoints.length > 1 && s.url ? [`endpoint ${s.endpoints.indexOf(s.url) + 1} of ${s.endpoints.length}`] : [])];
  return parts.length ? ` (${parts.join(", ")})` : "";
}

/** Text in lines of at most `width` characters, broken at spaces (a longer word stays whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** HELD: out of assignment until a technician acts (inspection after a forced open, or a fault), and for how long. */
function held(r: CompartmentRow, now: number): string {
  if (!r.held) return "";
  return r.heldSince === null ? r.held : `${r.held} ${duration(Math.max(0, now - r.heldSince))}`;
}

export function formatCompartments(rows: CompartmentRow[], style: Style, now = Date.now()): string {
  const body = rows.map((r) => [
    r.id,
    r.keypad,
    r.size,
    r.state,
    r.door,
    r.enabled ? "yes" : "NO",
    held(r, now),
    r.parcelAgeMs === null ? "" : duration(r.parcelAgeMs),
    String(r.pulses),
    r.failedOpens ? String(r.failedOpens) : "",
    clean(r.faultReason ?? ""),
  ]);
  return table([["ID", "KEY", "SIZE", "STATE", "DOOR", "ENABLED", "HELD", "PARCEL AGE", "PULSES", "FAILED", "FAULT"], ...body], style, (row, col) => {
    if (col === 3) return STATE_COLOR[rows[row]!.state];
    if (col === 5 && !rows[row]!.enabled) return "red";
    if (col === 4 && rows[row]!.door === "open") return "yellow";
    if (col === 6 && rows[row]!.held) return rows[row]!.held === "fault" ? "red" : "yellow";
    return undefined;
  });
}

export function formatOpenReports(r: z.infer<typeof RelayTestResult>, style: Style): string {
  if (!r.results.length) return "nothing to test";
  const verdict = (x: (typeof r.results)[number]) => (x.opened ? "opened" : x.unverified ? "NOT TESTED" : x.unavailable ? "UNAVAILABLE" : "DID NOT OPEN");
  const body = r.results.map((x) => [x.compartment, verdict(x), String(x.attempts), x.ms === null ? "" : `${x.ms} ms`, clean(x.error ?? "")]);
  return table([["ID", "DOOR", "PULSES", "OPENED AFTER", "ERROR"], ...body], style, (row, col) => (col === 1 ? (r.results[row]!.opened ? "green" : "red") : undefined));
}

export function formatSensors(r: z.infer<typeof SensorsResult>, style: Style): string {
  return table(
    [["ID", "CHANNEL", "DOOR"], ...r.doors.map((d) => [d.compartment, String(d.channel), d.door])],
    style,
    (row, col) => (col === 2 ? (r.doors[row]!.door === "open" ? "yellow" : r.doors[row]!.door === "closed" ? "green" : "red") : undefined),
  );
}

export function formatSelftest(r: z.infer<typeof SelftestResult>, style: Style): string {
  const lines = r.checks.map((c) => `${c.ok ? paint(style, "green", "PASS") : paint(style, "red", "FAIL")}  ${c.name}: ${clean(c.detail)}`);
  const skipped = r.skipped ?? [];
  lines.push(...skipped.map((c) => `${paint(style, "yellow", "SKIP")}  ${c.name}: ${clean(c.detail)}`));
  const partly = skipped.length ? `; ${skipped.length} check(s) not run` : "";
  lines.push(r.ok ? paint(style, "green", `selftest passed${partly}`) : paint(style, "red", `selftest FAILED (${r.checks.filter((c) => !c.ok).length} check(s))${partly}`));
  return lines.join("\n");
}

export function formatEvent(e: z.infer<typeof LedgerEventView>, style: Style): string {
  const color: Paint | undefined = e.type.startsWith("alarm.") || e.type === "compartment.fault" ? "red" : e.type.startsWith("admin.") ? "yellow" : undefined;
  const type = color ? paint(style, color, e.type.padEnd(24)) : e.type.padEnd(24);
  const data = Object.keys(e.data).length ? ` ${clean(JSON.stringify(e.data))}` : "";
  const line = `${String(e.seq).padStart(6)} ${time(e.ts)} ${type} ${(e.compartment ?? "").padEnd(4)} ${clean(e.actor ?? "")}${data}`;
  return line;
}
