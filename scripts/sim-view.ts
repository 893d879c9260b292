// Pure parts of `npm run sim`: key mapping, command parsing, event formatting and the screen layout.
// No I/O here: scripts/sim.ts owns the socket, the child daemon and the terminal.
import { clean, fitLine as line, layoutGrid, legend, type Seg } from "../src/cli/grid.js";
import { MAX_KEYS_PER_LINE, SimRequest, type CompartmentView, type SimEvent } from "../src/sim/protocol.js";

export { clean };

// ── input ───────────────────────────────────────────────────────────────────

export type InputMode = { kind: "normal" } | { kind: "command"; buf: string };
export type KeyAction = { t: "keys"; keys: string } | { t: "run"; line: string } | { t: "quit" } | { t: "redraw" };

const MAX_COMMAND = 200;

/** One chunk of raw-mode stdin → the new input mode and what to do. Escape sequences (arrows…) are ignored. */
export function mapInput(mode: InputMode, chunk: string): { mode: InputMode; actions: KeyAction[] } {
  const actions: KeyAction[] = [];
  let keys = "";
  const flush = () => {
    if (keys) actions.push({ t: "keys", keys });
    keys = "";
  };
  const chars = Array.from(chunk);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === "\x03") {
      flush();
      actions.push({ t: "quit" });
      return { mode: { kind: "normal" }, actions };
    }
    if (ch === "\x1b") {
      const next = chars[i + 1];
      if (next === "[" || next === "O") {
        i += 2; // skip to the final byte of the sequence
        while (i < chars.length && !/[@-~]/.test(chars[i]!)) i++;
      } else if (mode.kind === "command") {
        mode = { kind: "normal" };
      }
      continue;
    }
    if (mode.kind === "normal") {
      if (/^[0-9*#]$/.test(ch)) keys += ch;
      else if (ch === ":") {
        flush();
        mode = { kind: "command", buf: "" };
      } else if (ch === "q" || ch === "\x04") {
        flush();
        actions.push({ t: "quit" });
        return { mode, actions };
      } else if (ch === "\x0c") actions.push({ t: "redraw" });
      continue;
    }
    if (ch === "\r" || ch === "\n") {
      actions.push({ t: "run", line: mode.buf });
      mode = { kind: "normal" };
    } else if (ch === "\x7f" || ch === "\b") {
      mode = mode.buf ? { kind: "command", buf: Array.from(mode.buf).slice(0, -1).join("") } : { kind: "normal" };
    } else if (ch === "\x15") {
      mode = { kind: "command", buf: "" };
    } else if (ch >= " " && mode.buf.length < MAX_COMMAND) {
      mode = { kind: "command", buf: mode.buf + ch };
    }
  }
  flush();
  return { mode, actions };
}

export type Command =
  | { t: "send"; reqs: SimRequest[] }
  | { t: "quit" }
  | { t: "help" }
  | { t: "wait"; ms: number }
  | { t: "error"; message: string };

export const COMMAND_HELP = "open|close|jam|unjam A07, badge HEX, finger N, scan TEXT, temp B01 12, unplug|plug B01, keys 123#, state, wait MS, q";
const VERBS = "open close jam unjam badge finger scan temp unplug plug keys state wait q";

/** Keypad input split into requests the socket accepts. */
export function keyRequests(keys: string): SimRequest[] {
  const out: SimRequest[] = [];
  for (let i = 0; i < keys.length; i += MAX_KEYS_PER_LINE) out.push({ op: "keys", keys: keys.slice(i, i + MAX_KEYS_PER_LINE) });
  return out;
}

/** A command line (`open A07`, `badge 04A1B2C3`, …), validated against the socket's own schema. */
export function parseCommand(line: string): Command {
  const text = line.trim().replace(/^:\s*/, "");
  const [verb = "", ...args] = text.split(/\s+/);
  const arg = args[0] ?? "";
  const need = (usage: string): Command | undefined => (args.length === 1 ? undefined : { t: "error", message: `usage: ${usage}` });
  let req: unknown;
  switch (verb.toLowerCase()) {
    case "open":
    case "close":
      req = { op: "door", compartment: arg.toUpperCase(), state: verb.toLowerCase() === "open" ? "open" : "closed" };
      return need(`${verb.toLowerCase()} A07`) ?? validated(req);
    case "jam":
    case "unjam":
      req = { op: "jam", compartment: arg.toUpperCase(), jammed: verb.toLowerCase() === "jam" };
      return need(`${verb.toLowerCase()} A07`) ?? validated(req);
    case "badge":
      return need("badge 04A1B2C3") ?? validated({ op: "badge", id: arg });
    case "finger":
      return need("finger 7") ?? validated({ op: "finger", finger: arg });
    case "temp":
      if (args.length !== 2 || !Number.isFinite(Number(args[1]))) return { t: "error", message: "usage: temp B01 12.5" };
      return validated({ op: "temperature", compartment: arg.toUpperCase(), celsius: Number(args[1]) });
    case "unplug":
    case "plug":
      return need(`${verb.toLowerCase()} B01`) ?? validated({ op: "sensor", compartment: arg.toUpperCase(), failing: verb.toLowerCase() === "unplug" });
    case "scan": {
      const rest = text.slice(verb.length).trim();
      return rest ? validated({ op: "scan", text: rest }) : { t: "error", message: "usage: scan TEXT" };
    }
    case "keys":
      if (args.length !== 1 || !/^[0-9*#]+$/.test(arg)) return { t: "error", message: "usage: keys 123# (keys are 0-9, * and #)" };
      return { t: "send", reqs: keyRequests(arg) };
    case "state":
      return args.length ? { t: "error", message: "usage: state" } : { t: "send", reqs: [{ op: "state" }] };
    case "wait": {
      const ms = Number(arg);
      return args.length === 1 && Number.isInteger(ms) && ms >= 0 && ms <= 600_000 ? { t: "wait", ms } : { t: "error", message: "usage: wait MS" };
    }
    case "q":
    case "quit":
    case "exit":
      return { t: "quit" };
    case "help":
    case "?":
      return { t: "help" };
    case "":
      return { t: "error", message: `empty command; try: ${VERBS}` };
    default:
      return { t: "error", message: `unknown command "${verb}"; try: ${VERBS}` };
  }
}

function validated(raw: unknown): Command {
  const r = SimRequest.safeParse(raw);
  return r.success ? { t: "send", reqs: [r.data] } : { t: "error", message: r.error.issues.map((i) => i.message).join("; ") };
}

/** A scripted stdin line: bare keypad keys, or a command as typed after `:`. */
export function parseLine(line: string): Command | undefined {
  const text = line.trim();
  if (!text) return undefined;
  return /^[0-9*#]+$/.test(text) ? { t: "send", reqs: keyRequests(text) } : parseCommand(text);
}

// ── events and log ──────────────────────────────────────────────────────────

export type LogKind = "unlock" | "buzzer" | "door" | "notify" | "error" | "local";
export interface LogEntry {
  time: string;
  text: string;
  kind: LogKind;
  count: number;
}

export function describe(ev: SimEvent): { text: string; kind: LogKind } | undefined {
  switch (ev.ev) {
    case "unlock":
      return { text: `unlock ${ev.compartment} (${ev.pulseMs} ms pulse)`, kind: "unlock" };
    case "buzzer":
      return { text: `buzzer ${ev.pattern}`, kind: "buzzer" };
    case "door":
      return { text: `door ${ev.compartment} ${ev.state}`, kind: "door" };
    case "notify":
      return { text: `NOTIFY ${ev.name ?? ev.person}: parcel ${ev.parcel} in ${ev.compartment}, pickup code ${ev.code}`, kind: "notify" };
    case "alarm":
      return { text: `ALARM ${ev.type}${ev.compartment ? ` ${ev.compartment}` : ""}`, kind: "error" };
    case "error":
      return { text: `error: ${ev.message}`, kind: "error" };
    default:
      return undefined;
  }
}

/** Append, folding a repeat of the last line into a count. Keeps the last `max`. */
export function pushLog(log: LogEntry[], time: string, text: string, kind: LogKind, max = 100): LogEntry {
  text = clean(text);
  const last = log[log.length - 1];
  if (last && last.text === text && last.kind === kind) {
    last.count++;
    last.time = time;
    return last;
  }
  const entry = { time, text, kind, count: 1 };
  log.push(entry);
  if (log.length > max) log.splice(0, log.length - max);
  return entry;
}

export function formatEntry(e: LogEntry): string {
  return `${e.time} ${e.text}${e.count > 1 ? ` (x${e.count})` : ""}`;
}

/** What changed between two state snapshots, one line per compartment. */
export function diffState(prev: readonly CompartmentView[], next: readonly CompartmentView[]): string[] {
  const before = new Map(prev.map((c) => [c.id, c]));
  const out: string[] = [];
  for (const c of next) {
    const p = before.get(c.id);
    if (p && p.state === c.state && p.door === c.door && p.enabled === c.enabled) continue;
    const from = p ? `${label(p)}/${p.door} → ` : "";
    out.push(`state ${c.id} ${from}${label(c)}/${c.door}`);
  }
  return out;
}

/** The whole bank in one line: how many are free and closed, then every other compartment. */
export function summarizeState(list: readonly CompartmentView[]): string {
  const idle = list.filter((c) => label(c) === "free" && c.door === "closed").length;
  const rest = list.filter((c) => label(c) !== "free" || c.door !== "closed").map((c) => `${c.id} ${label(c)}/${c.door}`);
  return `state: ${list.length} compartments, ${idle} free${rest.length ? `; ${rest.join(", ")}` : ""}`;
}

// ── screen ──────────────────────────────────────────────────────────────────

export interface ViewModel {
  device: string;
  terminal: string;
  info: string;
  compartments: CompartmentView[];
  display: string[] | undefined;
  log: LogEntry[];
  lastCode: { code: string; compartment: string; person: string } | undefined;
  mode: InputMode;
  status: { text: string; error: boolean } | undefined;
}

const LOG_STYLE: Record<LogKind, string | undefined> = { unlock: "36", buzzer: "2", door: "33", notify: "1;35", error: "31", local: "2" };
const HELP = "0-9*# keys | :open :close :jam :unjam A07 :badge HEX :finger N :scan TEXT :state | q quit";
const PANEL = 30; // the keypad panel's share of the width, legend included

function label(c: CompartmentView): string {
  return c.enabled ? c.state : "disabled";
}

/** The keypad LCD, the last pickup code and the legend, stacked. */
function panel(m: ViewModel): Seg[][] {
  const lines = m.display ?? ["(waiting for the", "next display", "update)"];
  const w = Math.max(20, ...lines.map((l) => Array.from(l).length));
  const title = ` ${m.terminal || "keypad"} `;
  const out: Seg[][] = [[[`┌─${title}${"─".repeat(Math.max(0, w - 1 - title.length))}┐`]]];
  for (let i = 0; i < Math.max(4, lines.length); i++) {
    out.push([["│"], [(lines[i] ?? "").padEnd(w), m.display ? "30;42" : "2"], ["│"]]);
  }
  out.push([[`└${"─".repeat(w)}┘`]], [[""]]);
  const lc = m.lastCode;
  out.push(lc ? [["last code "], [lc.code, "1;35"], [` → ${lc.compartment}`]] : [["last code: none yet", "2"]]);
  out.push(lc ? [[`  for ${lc.person}`, "2"]] : [[""]], [[""]]);
  out.push(...legend(PANEL - 2));
  return out;
}

/** The whole screen: exactly `rows` lines of `cols` columns, plus where the cursor goes (command mode). */
export function render(m: ViewModel, cols: number, rows: number, color: boolean): { lines: string[]; cursor?: { row: number; col: number } } {
  const g = layoutGrid(m.compartments, cols - PANEL);
  const p = panel(m);
  const middle = Math.min(Math.max(g.rows.length, p.length), Math.max(0, rows - 5));
  const cut = Math.max(0, g.rows.length - middle);
  const hidden = [g.hiddenColumns ? `${g.hiddenColumns} column(s) hidden: widen the terminal` : "", cut ? `${cut} row(s) hidden: enlarge the terminal` : ""];
  const title = [`lockerd sim`, m.device || "connecting…", m.info, ...hidden.filter(Boolean)].join(" | ");
  const out: string[] = [line([[` ${title}`.padEnd(cols), "7"]], cols, color)];
  for (let r = 0; r < middle; r++) {
    const left = g.rows[r] ?? [];
    const pad = " ".repeat((left.length ? 0 : g.width) + 3);
    out.push(line([...left, [pad], ...(p[r] ?? [])], cols, color));
  }
  out.push(line([["── events ", "2"], ["─".repeat(cols), "2"]], cols, color));
  const logRows = Math.max(0, rows - out.length - 2);
  const entries = m.log.slice(-logRows);
  for (let i = 0; i < logRows; i++) {
    const e = entries[i];
    out.push(line(e ? [[formatEntry(e), LOG_STYLE[e.kind]]] : [], cols, color));
  }
  out.push(line([[HELP, "2"]], cols, color));
  if (m.mode.kind === "command") {
    const visible = Array.from(m.mode.buf).slice(-(cols - 2)).join("");
    out.push(line([[":"], [visible]], cols, color));
    return { lines: out.slice(0, rows), cursor: { row: Math.min(rows, out.length), col: 2 + Array.from(visible).length } };
  }
  const s = m.status;
  out.push(line(s ? [[s.text, s.error ? "1;31" : undefined]] : [], cols, color));
  return { lines: out.slice(0, rows) };
}
