// lockerctl's commands, one entry each: what `lockerctl --help` and `lockerctl help NAME` say, how
// the command line becomes an admin request, how the answer is printed, and (for the commands that
// need no hardware) how it is answered from the ledger file when lockerd is not running.
//
// A new command is one more entry in COMMANDS: name, summary, usage, options, examples, and
// `request` (its arguments; default none) and `render` (print the answer). `offline` makes it work
// without the daemon; `streams` keeps the connection open; `run` takes the connection over (watch).
import { z } from "zod";
import { CompartmentRow, LedgerEventView, ReloadResult, RelayTestResult, SelftestResult, SensorsResult, StatusResult, SyncStatus, type StreamItem } from "../admin/protocol.js";
import { formatStats, StatsResult } from "../admin/stats.js";
import type { ReadOnlyLedger } from "../ledger/read-ledger.js";
import type { AdminClient } from "./client.js";
import { formatCompartments, formatEvent, formatOpenReports, formatSelftest, formatSensors, formatStatus, formatSync, type Style } from "./format.js";
import { offlineCompartments, offlineEvents, offlineSelftest, offlineStats } from "./offline.js";
import { BACKUP_HELP, fingerStep, formatBackup, PEOPLE_HELP, PeopleUsage, peopleRequest, readPinTwice, renderPeople, runBackup, type PeopleOptions } from "./people.js";
import { runWatch } from "./watch.js";

/** A mistake on the command line (exit 2); `command` points the hint at that command's help. */
export class Usage extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

export type Opts = Record<string, string | boolean | undefined>;
export type Args = Record<string, unknown>;

export interface OptionSpec {
  name: string;
  type: "string" | "boolean";
  /** The value's placeholder in help (S, N, TEXT). */
  value?: string;
  help: string;
}

/** Where output goes, and how it looks. */
export interface Io {
  style: Style;
  json: boolean;
  now: number;
  out(text: string): void;
  /** One JSON value on stdout (lockerctl adds where a dual-source answer came from). */
  emit(value: unknown): void;
}

export interface Command {
  name: string;
  /** One line for the overview (lockerctl --help). */
  summary: string;
  /** Arguments and options after the name, as in the overview. */
  usage: string;
  /** More lines for `lockerctl help NAME`. */
  about?: string[];
  options?: OptionSpec[];
  examples: string[];
  /** The admin request's arguments from the command line; throws Usage. Absent: the command takes none. */
  request?(rest: string[], o: Opts): Args;
  /** Check the answer against its schema and print it; returns the exit code. */
  render?(result: unknown, io: Io): number;
  /** This request keeps the connection open, printing stream items, until Ctrl-C. */
  streams?(args: Args): boolean;
  /** Answer from the ledger file (read-only) when lockerd is not running; absent: needs lockerd. */
  offline?(ledger: ReadOnlyLedger, args: Args, now: number): unknown;
  /** Take over the connection (watch; a command with subcommands); returns the exit code. */
  run?(client: AdminClient, c: RunContext): Promise<number>;
}

/** What `run` gets besides the connection. */
export interface RunContext {
  /** The words after the command's name, and every option given. */
  rest: string[];
  o: Opts;
  /** What `request` made of them, if the command has one. */
  args: Args;
  user: string;
  style: Style;
  io: Io;
}

export const EXIT = { ok: 0, failed: 1, usage: 2, notRunning: 3, permission: 4, checkFailed: 5 } as const;

/** Options every command takes. */
export const COMMON: OptionSpec[] = [
  { name: "socket", type: "string", value: "PATH", help: "the admin socket (see lockerctl --help)" },
  { name: "data", type: "string", value: "DIR", help: "lockerd's data directory: its socket, and its ledger when lockerd is not running" },
  { name: "json", type: "boolean", help: "print JSON (the schemas in src/admin/protocol.ts)" },
  { name: "no-color", type: "boolean", help: "no colour (also NO_COLOR=1)" },
  { name: "help", type: "boolean", help: "this help" },
];

const REASON: OptionSpec = { name: "reason", type: "string", value: "TEXT", help: "why (recorded with your user name)" };

/** Validate, print as JSON or for people; the exit code from the value. */
function print<T>(schema: z.ZodType<T>, human: (v: T, io: Io) => string, exit: (v: T) => number = () => EXIT.ok) {
  return (result: unknown, io: Io): number => {
    const v = schema.parse(result);
    if (io.json) io.emit(v);
    else io.out(human(v, io));
    return exit(v);
  };
}

function one(name: string, rest: string[]): string {
  if (rest.length !== 1) throw new Usage(`${name} takes one compartment (e.g. A07, or keypad number 107)`, name);
  return rest[0]!;
}

function int(command: string, name: string, v: string | boolean | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string" || !/^[0-9]+$/.test(v)) throw new Usage(`--${name}: expected a whole number, got "${String(v)}"`, command);
  return Number(v);
}

/** "42" → seq 42; "15m" / "2h" / "3d" → that long ago; otherwise a date. */
export function parseSince(text: string, now: number): { sinceSeq?: number; sinceTs?: number } {
  if (/^[0-9]+$/.test(text)) return { sinceSeq: Number(text) };
  const d = /^([0-9]+)([smhd])$/.exec(text);
  if (d) return { sinceTs: now - Number(d[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[d[2] as "s" | "m" | "h" | "d"] };
  const ts = Date.parse(text);
  if (Number.isNaN(ts)) throw new Usage(`--since: expected a seq number, a duration such as 2h, or a date; got "${text}"`, "events");
  return { sinceTs: ts };
}

const Compartments = z.object({ compartments: z.array(CompartmentRow) });
const Events = z.object({ events: z.array(LedgerEventView) });
const Enabled = z.object({ compartment: z.string(), enabled: z.boolean() });

export const COMMANDS: Command[] = [
  {
    name: "status",
    summary: "device, uptime, devices, sync, open alarms",
    usage: "",
    examples: ["lockerctl status"],
    render: print(StatusResult, (s, io) => formatStatus(s, io.style)),
  },
  {
    name: "compartments",
    summary: "every compartment: state, door, enabled, held, parcel",
    usage: "",
    about: [
      "HELD: out of assignment until a technician acts: inspection (forced open; `lockerctl enable C`",
      "after a look) or fault (the lock did not open), with how long. Without lockerd: read from the",
      "ledger file; DOOR is then unknown.",
    ],
    examples: ["lockerctl compartments", "lockerctl compartments --json | jq '.compartments[] | select(.held)'"],
    render: print(Compartments, (r, io) => formatCompartments(r.compartments, io.style, io.now)),
    offline: offlineCompartments,
  },
  {
    name: "open",
    summary: "open one door (audited); C is A07 or keypad number 107",
    usage: "C --reason TEXT",
    options: [REASON],
    examples: ['lockerctl open A07 --reason "customer left keys inside"'],
    request: (rest, o) => {
      if (!o.reason) throw new Usage('open needs --reason "why" (it is recorded with your user name)', "open");
      return { compartment: one("open", rest), reason: o.reason };
    },
    render: print(RelayTestResult.shape.results.element, (x, io) => formatOpenReports({ results: [x] }, io.style), (r) => (r.opened ? EXIT.ok : EXIT.failed)),
  },
  {
    name: "disable",
    summary: "take a compartment out of service",
    usage: "C --reason TEXT",
    options: [REASON],
    examples: ['lockerctl disable B03 --reason "hinge broken"'],
    request: (rest, o) => {
      if (!o.reason) throw new Usage('disable needs --reason "why" (it is recorded with your user name)', "disable");
      return { compartment: one("disable", rest), reason: o.reason };
    },
    render: print(Enabled, (r) => `${r.compartment} disabled: out of service`),
  },
  {
    name: "enable",
    summary: "back in service (clears a fault, an inspection hold)",
    usage: "C [--reason TEXT]",
    options: [REASON],
    examples: ['lockerctl enable B03 --reason "hinge replaced"'],
    request: (rest, o) => ({ compartment: one("enable", rest), ...(o.reason ? { reason: o.reason } : {}) }),
    render: print(Enabled, (r) => `${r.compartment} enabled: back in service`),
  },
  {
    name: "relay-test",
    summary: "pulse each lock in turn, report whether its door opened",
    usage: "[C...] [--reason TEXT]",
    about: ["Without C: every compartment without a parcel. Exit 5 when a door did not open."],
    options: [REASON],
    examples: ["lockerctl relay-test", "lockerctl relay-test A01 A02 --json"],
    request: (rest, o) => ({ compartments: rest, ...(o.reason ? { reason: o.reason } : {}) }),
    render: print(RelayTestResult, (x, io) => formatOpenReports(x, io.style), (r) => (r.results.every((x) => x.opened) ? EXIT.ok : EXIT.checkFailed)),
  },
  {
    name: "sensors",
    summary: "door switch states; --watch streams changes",
    usage: "[--watch]",
    options: [{ name: "watch", type: "boolean", help: "then print each door change until Ctrl-C" }],
    examples: ["lockerctl sensors --watch"],
    request: (rest, o) => (rest.length ? noArguments("sensors") : { watch: !!o.watch }),
    streams: (a) => a.watch === true,
    render: print(SensorsResult, (r, io) => formatSensors(r, io.style)),
  },
  {
    name: "selftest",
    summary: "every device answers, ledger and custody chain intact",
    usage: "",
    about: [
      "Exit 5 when a check fails. Without lockerd: the checks that need no hardware, from the",
      "ledger file (schema, integrity, tables, custody chain, data directory, ledger size, disk);",
      "devices, door sensors and the server link are reported as not run.",
    ],
    examples: ["lockerctl selftest", "sudo lockerctl --data /var/lib/lockerd selftest"],
    render: print(SelftestResult, (x, io) => formatSelftest(x, io.style), (r) => (r.ok ? EXIT.ok : EXIT.checkFailed)),
    offline: offlineSelftest,
  },
  {
    name: "events",
    summary: "the custody log: alarms, parcels, technician actions",
    usage: "[--since S] [--type T] [--limit N] [--follow]",
    options: [
      { name: "since", type: "string", value: "S", help: "from a seq number, a duration ago (15m, 2h, 3d) or a date" },
      { name: "type", type: "string", value: "T", help: "a type (parcel.picked_up), a family (alarm: every alarm.*) or a prefix (alarm.)" },
      { name: "limit", type: "string", value: "N", help: "at most N events (default 50; without --since the newest N)" },
      { name: "follow", type: "boolean", help: "then stream new events until Ctrl-C (needs lockerd)" },
    ],
    examples: ["lockerctl events --type alarm --since 2h", "lockerctl events --since 1 --limit 10000 --json"],
    request: (rest, o) => {
      if (rest.length) noArguments("events");
      return {
        ...(typeof o.since === "string" ? parseSince(o.since, Date.now()) : {}),
        ...(typeof o.type === "string" ? { type: o.type } : {}),
        limit: int("events", "limit", o.limit) ?? 50,
        follow: !!o.follow,
      };
    },
    streams: (a) => a.follow === true,
    render: print(Events, (r, io) => (r.events.length ? r.events.map((e) => formatEvent(e, io.style)).join("\n") : "no events")),
    offline: offlineEvents,
  },
  {
    name: "sync",
    summary: "server link: connected, backlog, last ack, last error",
    usage: "",
    about: ["Also the bank instance's id, and a duplicate identity: another process connecting as this bank."],
    examples: ["lockerctl sync"],
    render: print(SyncStatus, (s, io) => formatSync(s, io.style)),
  },
  {
    name: "stats",
    summary: "utilization, dwell, retrieval, busy hours, refusals, wear",
    usage: "[--days N]",
    options: [{ name: "days", type: "string", value: "N", help: "the window: the last N days (default 30)" }],
    examples: ["lockerctl stats --days 7"],
    request: (rest, o) => (rest.length ? noArguments("stats") : { days: int("stats", "days", o.days) ?? 30 }),
    render: print(StatsResult, (s, io) => formatStats(s, { width: Math.min(process.stdout.columns || 80, 100), color: io.style.color })),
    offline: offlineStats,
  },
  {
    name: "people",
    summary: "who may use the bank: people, their PINs, badges and fingers",
    usage: "list | add | set-pin | set-badge | disable | enable | enroll-finger | remove-finger ...",
    about: PEOPLE_HELP.split("\n").slice(2, -1),
    options: [
      { name: "name", type: "string", value: "NAME", help: "add: the person's name" },
      { name: "roles", type: "string", value: "R[,R]", help: "add: recipient, courier, staff, technician" },
      { name: "number", type: "string", value: "N", help: "add: the recipient number a courier types" },
      { name: "none", type: "boolean", help: "set-pin: remove the PIN" },
      { name: "captures", type: "string", value: "2|3", help: "enroll-finger: touches (default 2)" },
      { name: "slot", type: "string", value: "N", help: "remove-finger: only this slot" },
      REASON,
    ],
    examples: ['lockerctl people add courier-2 --name "Dana Driver" --roles courier', "lockerctl people set-pin courier-2", "lockerctl people disable courier-2 --reason left", "lockerctl people enroll-finger courier-2"],
    request: (rest, o) => {
      try {
        return peopleRequest(rest, o as PeopleOptions);
      } catch (e) {
        throw e instanceof PeopleUsage ? new Usage(e.message, "people") : e;
      }
    },
    run: async (client, c) => {
      const { cmd, args, pin } = c.args as ReturnType<typeof peopleRequest>;
      if (pin) {
        try {
          args.pin = await readPinTwice();
        } catch (e) {
          throw e instanceof PeopleUsage ? new Usage(e.message, "people") : e;
        }
      }
      const onStep = (item: StreamItem) => {
        const line = fingerStep(item);
        if (line && !c.io.json) c.io.out(line);
      };
      if (cmd === "people-enroll-finger" && !c.io.json) c.io.out("enrolling: watch the bank's display");
      const result = await client.request(cmd as never, args, c.user, onStep);
      client.close();
      if (c.io.json) c.io.emit(result);
      else c.io.out(renderPeople(cmd, result, c.style));
      return EXIT.ok;
    },
  },
  {
    name: "reload",
    summary: "read the config again: apply its layout where safe (as SIGHUP)",
    usage: "",
    about: [
      "New compartments are added, empty ones removed from the config retired, free ones changed;",
      "a change to a compartment holding a parcel refuses the whole plan (nothing applied, the bank",
      "runs on). Other changes take effect at the next restart: listed. Exit 1 when refused.",
    ],
    examples: ["sudo lockerd --check-config --config /etc/lockerd/config.json --data /var/lib/lockerd && lockerctl reload"],
    render: print(
      ReloadResult,
      (r) =>
        [
          `layout ${r.layout}${r.plan.length ? ":" : ": nothing to change"}`,
          ...r.plan.map((l) => `  ${l}`),
          ...(r.restart.length ? [`take effect only after a restart: ${r.restart.join(", ")}`] : []),
        ].join("\n"),
      (r) => (r.layout === "applied" ? EXIT.ok : EXIT.failed),
    ),
  },
  {
    name: "backup",
    summary: "a consistent copy of the ledger and its device key, to FILE (0600)",
    usage: "FILE",
    about: BACKUP_HELP.split("\n").slice(2, -1),
    examples: ["lockerctl backup /var/backups/lockerd-$(date +%F).backup"],
    request: (rest) => {
      if (rest.length !== 1) throw new Usage("backup takes one FILE to write", "backup");
      return { file: rest[0]! };
    },
    run: async (client, c) => {
      const file = c.args.file as string;
      try {
        const r = await runBackup(client, file, c.user);
        client.close();
        if (c.io.json) c.io.emit({ file, ...r });
        else c.io.out(formatBackup(file, r));
        return EXIT.ok;
      } catch (e) {
        throw e instanceof PeopleUsage ? new Usage(e.message, "backup") : e;
      }
    },
  },
  {
    name: "watch",
    summary: "full-screen live view of the bank (q quits)",
    usage: "",
    about: ["Not on a terminal (a pipe): one frame, then done."],
    examples: ["lockerctl watch"],
    run: (client, c) => runWatch(client, c.user, c.style),
  },
];

function noArguments(name: string): never {
  throw new Usage(`${name} takes no arguments`, name);
}

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** Every option any command takes, for parseArgs (one type per name). */
export function allOptions(): Record<string, { type: "string" | "boolean"; short?: string }> {
  const out: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const o of [...COMMON, ...COMMANDS.flatMap((c) => c.options ?? [])]) out[o.name] ??= { type: o.type };
  return out;
}

/** An option given that this command does not take → Usage. */
export function checkOptions(cmd: Command, given: Opts): void {
  const takes = new Set([...COMMON, ...(cmd.options ?? [])].map((o) => o.name));
  const stray = Object.keys(given).filter((k) => given[k] !== undefined && !takes.has(k));
  if (stray.length) throw new Usage(`${cmd.name} does not take ${stray.map((k) => `--${k}`).join(", ")}`, cmd.name);
}
