#!/usr/bin/env node
// lockerctl: the technician's CLI. Talks to the running lockerd (which alone owns the hardware)
// over its admin socket. Exit codes: 0 ok · 1 the daemon refused or the action failed · 2 usage ·
// 3 lockerd not running · 4 permission denied · 5 a check failed (selftest, relay-test).
import { existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { RelayTestResult, SelftestResult, SensorsResult, StatusResult, CompartmentRow, LedgerEventView, SyncStatus } from "../admin/protocol.js";
import { formatStats, StatsResult } from "../admin/stats.js";
import { AdminClient, ConnectError, ReplyError } from "./client.js";
import { clean, formatCompartments, formatEvent, formatOpenReports, formatSelftest, formatSensors, formatStatus, formatSync, paint, time, type Style } from "./format.js";
import { runWatch } from "./watch.js";
import { z } from "zod";

export const EXIT = { ok: 0, failed: 1, usage: 2, notRunning: 3, permission: 4, checkFailed: 5 } as const;

const HELP = `lockerctl — diagnostics and control of a running lockerd

Usage: lockerctl [--socket PATH | --data DIR] [--json] [--no-color] COMMAND

Commands:
  status                       device, uptime, devices, sync, open alarms
  compartments                 every compartment: size, state, door, enabled, parcel age
  open C --reason TEXT         open one door (audited); C is A07 or keypad number 107
  disable C --reason TEXT      take a compartment out of service
  enable C [--reason TEXT]     put it back in service (also clears a fault)
  relay-test [C...] [--reason] pulse each lock in turn, report whether its door opened
                               (default: every compartment without a parcel)
  sensors [--watch]            door switch states; --watch streams changes
  selftest                     every device answers, ledger and custody chain intact
  events [--since S] [--type T] [--limit N] [--follow]
                               S: a seq number, a duration (15m, 2h, 3d) or a date
                               T: a type (parcel.picked_up) or a prefix (alarm.)
  sync                         server link: connected, backlog, last ack, instance, last error,
                               a duplicate identity
  stats [--days N]             utilization, dwell, retrieval, busy hours, refusals, wear
  watch                        full-screen live view of the bank (q quits)

Socket: --socket, else $LOCKERD_ADMIN_SOCKET, else /run/lockerd/admin.sock when it exists,
else <--data or ./data>/admin.sock.
Exit codes: 0 ok, 1 refused or failed, 2 usage, 3 lockerd not running, 4 permission denied,
5 a check failed (selftest, relay-test).
`;

class Usage extends Error {}

function socketPath(opts: { socket?: string; data?: string }): string {
  if (opts.socket) return resolve(opts.socket);
  if (process.env.LOCKERD_ADMIN_SOCKET) return resolve(process.env.LOCKERD_ADMIN_SOCKET);
  if (!opts.data && existsSync("/run/lockerd/admin.sock")) return "/run/lockerd/admin.sock";
  return join(resolve(opts.data ?? "data"), "admin.sock");
}

function groupOf(path: string): string {
  try {
    const gid = statSync(path).gid;
    const line = readFileSync("/etc/group", "utf8").split("\n").find((l) => l.split(":")[2] === String(gid));
    return line?.split(":")[0] ?? "lockerd-admin";
  } catch {
    return "lockerd-admin";
  }
}

/** "42" → seq 42; "15m" / "2h" / "3d" → that long ago; otherwise a date. */
export function parseSince(text: string, now: number): { sinceSeq?: number; sinceTs?: number } {
  if (/^[0-9]+$/.test(text)) return { sinceSeq: Number(text) };
  const d = /^([0-9]+)([smhd])$/.exec(text);
  if (d) return { sinceTs: now - Number(d[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[d[2] as "s" | "m" | "h" | "d"] };
  const ts = Date.parse(text);
  if (Number.isNaN(ts)) throw new Usage(`--since: expected a seq number, a duration such as 2h, or a date; got "${text}"`);
  return { sinceTs: ts };
}

async function main(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      socket: { type: "string" },
      data: { type: "string" },
      json: { type: "boolean" },
      "no-color": { type: "boolean" },
      reason: { type: "string" },
      watch: { type: "boolean" },
      follow: { type: "boolean" },
      since: { type: "string" },
      type: { type: "string" },
      limit: { type: "string" },
      days: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [cmd, ...rest] = positionals;
  if (o.help || !cmd) {
    process.stdout.write(HELP);
    return o.help ? EXIT.ok : EXIT.usage;
  }
  const style: Style = { color: !!process.stdout.isTTY && !process.env.NO_COLOR && !o["no-color"] };
  const user = process.env.SUDO_USER || userInfo().username;
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const json = (v: unknown) => out(JSON.stringify(v, null, o.json && process.stdout.isTTY ? 2 : undefined));
  const one = (what: string) => {
    if (rest.length !== 1) throw new Usage(`${cmd} takes one compartment (${what})`);
    return rest[0]!;
  };
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^[0-9]+$/.test(v)) throw new Usage(`--${name}: expected a whole number, got "${v}"`);
    return Number(v);
  };

  // Build the request first: a usage error needs no daemon.
  let args: Record<string, unknown> = {};
  switch (cmd) {
    case "status":
    case "compartments":
    case "selftest":
    case "sync":
    case "watch":
      if (rest.length) throw new Usage(`${cmd} takes no arguments`);
      break;
    case "open":
    case "disable":
      if (!o.reason) throw new Usage(`${cmd} needs --reason "why" (it is recorded with your user name)`);
      args = { compartment: one("e.g. A07"), reason: o.reason };
      break;
    case "enable":
      args = { compartment: one("e.g. A07"), ...(o.reason ? { reason: o.reason } : {}) };
      break;
    case "relay-test":
      args = { compartments: rest, ...(o.reason ? { reason: o.reason } : {}) };
      break;
    case "sensors":
      args = { watch: !!o.watch };
      break;
    case "events":
      args = { ...(o.since ? parseSince(o.since, Date.now()) : {}), ...(o.type ? { type: o.type } : {}), limit: int("limit", o.limit) ?? 50, follow: !!o.follow };
      break;
    case "stats":
      args = { days: int("days", o.days) ?? 30 };
      break;
    default:
      throw new Usage(`unknown command "${cmd}"`);
  }

  const path = socketPath(o);
  const client = await AdminClient.connect(path).catch((e: unknown) => {
    if (!(e instanceof ConnectError)) throw e;
    if (e.kind === "not_running") {
      process.stderr.write(`lockerctl: lockerd is not running (nothing listening at ${path}).\n  Check it with: systemctl status lockerd   (logs: journalctl -u lockerd -e)\n`);
      return EXIT.notRunning;
    }
    if (e.kind === "permission") {
      process.stderr.write(`lockerctl: permission denied on ${path}.\n  Join the group ${groupOf(path)}: sudo usermod -aG ${groupOf(path)} ${user}   (then log in again)\n`);
      return EXIT.permission;
    }
    process.stderr.write(`lockerctl: cannot connect to ${path}: ${e.errno}\n`);
    return EXIT.failed;
  });
  if (typeof client === "number") return client;

  if (cmd === "watch") return runWatch(client, user, style);
  const streaming = (cmd === "events" && o.follow) || (cmd === "sensors" && o.watch);
  try {
    const result = await client.request(cmd as never, args, user, (item) => {
      if (o.json) return json(item);
      if (item.kind === "event") out(formatEvent(item.event, style));
      else if (item.kind === "door") out(`${time(item.ts)}  ${item.compartment}  ${item.door === "open" ? paint(style, "yellow", "OPEN") : paint(style, "green", "closed")}`);
    });
    const code = render(cmd, result, !!o.json, style, out, json);
    if (!streaming) {
      client.close();
      return code;
    }
    await new Promise<void>((done) => process.once("SIGINT", done));
    client.close();
    return EXIT.ok;
  } catch (e) {
    client.close();
    if (e instanceof ReplyError) {
      if (o.json) json({ ok: false, error: { code: e.code, message: e.message } });
      process.stderr.write(`lockerctl: ${clean(e.message)}\n`);
      return e.code === "bad_input" ? EXIT.usage : EXIT.failed;
    }
    throw e;
  }
}

/** Validate a result against the shared schema and print it; returns the exit code. */
function render(cmd: string, result: unknown, asJson: boolean, style: Style, out: (s: string) => void, json: (v: unknown) => void): number {
  const show = <T>(schema: z.ZodType<T>, human: (v: T) => string): T => {
    const v = schema.parse(result);
    if (asJson) json(v);
    else out(human(v));
    return v;
  };
  switch (cmd) {
    case "status":
      show(StatusResult, (s) => formatStatus(s, style));
      return EXIT.ok;
    case "compartments":
      show(z.object({ compartments: z.array(CompartmentRow) }), (r) => formatCompartments(r.compartments, style));
      return EXIT.ok;
    case "open": {
      const r = show(RelayTestResult.shape.results.element, (x) => formatOpenReports({ results: [x] }, style));
      return r.opened ? EXIT.ok : EXIT.failed;
    }
    case "disable":
    case "enable":
      show(z.object({ compartment: z.string(), enabled: z.boolean() }), (r) => `${r.compartment} ${r.enabled ? "enabled: back in service" : "disabled: out of service"}`);
      return EXIT.ok;
    case "relay-test": {
      const r = show(RelayTestResult, (x) => formatOpenReports(x, style));
      return r.results.every((x) => x.opened) ? EXIT.ok : EXIT.checkFailed;
    }
    case "sensors":
      show(SensorsResult, (r) => formatSensors(r, style));
      return EXIT.ok;
    case "selftest": {
      const r = show(SelftestResult, (x) => formatSelftest(x, style));
      return r.ok ? EXIT.ok : EXIT.checkFailed;
    }
    case "events":
      show(z.object({ events: z.array(LedgerEventView) }), (r) => (r.events.length ? r.events.map((e) => formatEvent(e, style)).join("\n") : "no events"));
      return EXIT.ok;
    case "sync":
      show(SyncStatus, (s) => formatSync(s, style));
      return EXIT.ok;
    case "stats":
      show(StatsResult, (s) => formatStats(s, { width: Math.min(process.stdout.columns || 80, 100), color: style.color }));
      return EXIT.ok;
  }
  return EXIT.usage;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof Usage || (e as NodeJS.ErrnoException)?.code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`lockerctl: ${(e as Error).message}\n  (lockerctl --help lists the commands)\n`);
      process.exit(EXIT.usage);
    }
    process.stderr.write(`lockerctl: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(EXIT.failed);
  },
);
