#!/usr/bin/env node
// lockerctl: the technician's CLI. Talks to the running lockerd (which alone owns the hardware)
// over its admin socket; when nothing listens there, the commands that need no hardware read the
// ledger file instead, read-only (offline.ts). The commands are a table (commands.ts), their help
// is made from it (help.ts). Exit codes: 0 ok · 1 the daemon refused or the action failed ·
// 2 usage · 3 lockerd not running · 4 permission denied · 5 a check failed (selftest, relay-test).
import { existsSync, readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AdminClient, ConnectError, ReplyError } from "./client.js";
import { allOptions, checkOptions, EXIT, findCommand, Usage, type Args, type Command, type Io, type Opts } from "./commands.js";
import { clean, formatEvent, paint, time, type Style } from "./format.js";
import { commandHelp, overview, suggest, unknownCommand } from "./help.js";
import { dataDirOf } from "./offline.js";
import type { ReadOnlyLedger } from "../ledger/read-ledger.js";

function socketPath(opts: { socket?: string | undefined; data?: string | undefined }): string {
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

/** parseArgs over every command's options; an unknown option gets the closest known one. */
function parse(argv: string[]): { o: Opts; positionals: string[] } {
  const options = allOptions();
  try {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options });
    return { o: values as Opts, positionals };
  } catch (e) {
    const m = /^Unknown option '--([^']+)'/.exec((e as Error).message);
    const near = m ? suggest(m[1]!, Object.keys(options)) : undefined;
    throw new Usage(near ? `unknown option --${m![1]}: did you mean --${near}?` : (e as Error).message);
  }
}

async function main(argv: string[]): Promise<number> {
  const { o, positionals } = parse(argv);
  const [name, ...rest] = positionals;
  if (name === "help" || !name) {
    const topic = name === "help" ? rest[0] : undefined;
    if (topic === undefined) {
      process.stdout.write(overview());
      return o.help || name === "help" ? EXIT.ok : EXIT.usage;
    }
    const cmd = findCommand(topic);
    if (!cmd) throw new Usage(unknownCommand(topic));
    process.stdout.write(commandHelp(cmd));
    return EXIT.ok;
  }
  const cmd = findCommand(name);
  if (!cmd) throw new Usage(unknownCommand(name));
  if (o.help) {
    process.stdout.write(commandHelp(cmd));
    return EXIT.ok;
  }
  checkOptions(cmd, o);
  // Build the request first: a usage error needs no daemon.
  const args: Args = cmd.request ? cmd.request(rest, o) : {};
  if (!cmd.request && rest.length) throw new Usage(`${cmd.name} takes no arguments`, cmd.name);

  const style: Style = { color: !!process.stdout.isTTY && !process.env.NO_COLOR && !o["no-color"] };
  const user = process.env.SUDO_USER || userInfo().username;
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const json = (v: unknown) => out(JSON.stringify(v, null, o.json && process.stdout.isTTY ? 2 : undefined));
  // The commands that can also read the ledger say where an answer came from.
  const io = (source: Record<string, unknown>): Io => ({ style, json: !!o.json, now: Date.now(), out, emit: (v) => json(cmd.offline ? { ...source, ...(v as object) } : v) });

  const path = socketPath(o as { socket?: string; data?: string });
  const client = await AdminClient.connect(path).catch((e: unknown) => {
    if (!(e instanceof ConnectError)) throw e;
    if (e.kind === "not_running") return e;
    if (e.kind === "permission") {
      process.stderr.write(`lockerctl: permission denied on ${path}.\n  Join the group ${groupOf(path)}: sudo usermod -aG ${groupOf(path)} ${user}   (then log in again)\n`);
      return EXIT.permission;
    }
    process.stderr.write(`lockerctl: cannot connect to ${path}: ${e.errno}\n`);
    return EXIT.failed;
  });
  if (typeof client === "number") return client;
  const checkIt = "  Check it with: systemctl status lockerd   (logs: journalctl -u lockerd -e)\n";
  if (client instanceof ConnectError) {
    if (cmd.offline && !cmd.streams?.(args)) return fromLedger(cmd, args, path, dataDirOf(o.data as string | undefined), io, checkIt, argv);
    const instead = cmd.offline ? `  Without following, lockerctl ${cmd.name} reads the ledger file instead.\n` : "";
    process.stderr.write(`lockerctl: lockerd is not running (nothing listening at ${path}).\n${checkIt}${instead}`);
    return EXIT.notRunning;
  }

  const streaming = cmd.streams?.(args) ?? false;
  try {
    if (cmd.run) return await cmd.run(client, { rest, o, args, user, style, io: io({ source: "daemon" }) });
    const result = await client.request(cmd.name as never, args, user, (item) => {
      if (o.json) return json(item);
      if (item.kind === "event") out(formatEvent(item.event, style));
      else if (item.kind === "door") out(`${time(item.ts)}  ${item.compartment}  ${item.door === "open" ? paint(style, "yellow", "OPEN") : paint(style, "green", "closed")}`);
    });
    const code = cmd.render ? cmd.render(result, io({ source: "daemon" })) : EXIT.ok;
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
      return e.code === "bad_input" ? EXIT.usage : e.code === "identity_required" ? EXIT.permission : EXIT.failed;
    }
    throw e;
  }
}

/** lockerd is not running: answer from its ledger file, read-only, and say so (stderr, and `source` in JSON). */
async function fromLedger(cmd: Command, args: Args, socket: string, dataDir: string, io: (s: Record<string, unknown>) => Io, checkIt: string, argv: string[]): Promise<number> {
  const { readLedger, LedgerUnreadable } = await import("../ledger/read-ledger.js");
  const say = (text: string) => process.stderr.write(`lockerctl: ${text}\n`);
  let l: ReadOnlyLedger;
  try {
    l = readLedger(dataDir, Date.now);
  } catch (e) {
    if (!(e instanceof LedgerUnreadable)) throw e;
    if (e.kind === "missing") {
      say(`lockerd is not running (nothing listening at ${socket}), and there is no ledger to read instead: ${e.message}.\n  --data DIR names lockerd's data directory.\n${checkIt.trimEnd()}`);
      return EXIT.notRunning;
    }
    if (e.kind === "permission") {
      const quoted = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
      say(`lockerd is not running, and its ledger cannot be read: ${e.message}.\n  Read it as root: sudo lockerctl ${quoted}`);
      return EXIT.permission;
    }
    say(`lockerd is not running, and its ledger cannot be read: ${e.message}`);
    return EXIT.failed;
  }
  try {
    say(`lockerd is not running: read from the ledger file ${l.file} (read-only; live door and device states unknown)`);
    const now = Date.now();
    const result = cmd.offline!(l, args, now);
    return cmd.render ? cmd.render(result, { ...io({ source: "ledger", ledger: l.file }), now }) : EXIT.ok;
  } finally {
    l.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof Usage || (e as NodeJS.ErrnoException)?.code?.startsWith?.("ERR_PARSE_ARGS")) {
      const hint = e instanceof Usage && e.command ? `lockerctl help ${e.command}` : "lockerctl --help lists the commands";
      process.stderr.write(`lockerctl: ${(e as Error).message}\n  (${hint})\n`);
      process.exit(EXIT.usage);
    }
    process.stderr.write(`lockerctl: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(EXIT.failed);
  },
);
