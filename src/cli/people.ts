// `lockerctl people ...` and `lockerctl backup FILE`: the parts of lockerctl that manage the people
// directory and copy the bank. A PIN is typed twice without echo on the terminal (or given as two
// lines on stdin by a script), never on the command line, where `ps` and the shell history see it.
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { BackupResult, FingerEnrolled, FingersRemoved, PeopleResult, PersonRow, type StreamItem } from "../admin/protocol.js";
import type { AdminClient } from "./client.js";
import { paint, type Style } from "./format.js";

export class PeopleUsage extends Error {}

export const PEOPLE_HELP = `lockerctl people — the bank's people directory

Usage:
  lockerctl people list
  lockerctl people add ID --name "NAME" --roles ROLE[,ROLE] [--number N]
  lockerctl people set-pin ID [--none]       type the PIN twice (no echo); --none removes it
  lockerctl people set-badge ID [HEX...]     the person's badges (none: every badge removed)
  lockerctl people disable ID [--reason TEXT]  a leaver: every PIN, badge and finger revoked at once
  lockerctl people enable ID [--reason TEXT]
  lockerctl people enroll-finger ID [--captures 2|3]   the person touches the bank's sensor
  lockerctl people remove-finger ID [--slot N]         one finger, or all of the person's

Roles: recipient, courier, staff, technician. A recipient number is what a courier types.
Changes are allowed when lockerctl owns the directory (config people.owner "lockerctl", the
default without sync); with "server" they are made on the server and lockerctl only lists.
Each change is a ledger event naming you. A script may give the PIN as two lines on stdin:
  printf '%s\\n%s\\n' "$PIN" "$PIN" | lockerctl people set-pin courier-2

Fingerprints: the template stays on the bank's module; the ledger keeps only which slot is
whose. enroll-finger shows each step here and on the bank's display (place, lift, place again).
A disabled person's fingers are withdrawn at once and deleted from the module (retried while it
does not answer). Enrolling works whoever owns the directory: it needs the person at the bank.

Example:
  lockerctl people add courier-2 --name "Dana Driver" --roles courier
  lockerctl people set-pin courier-2
  lockerctl people enroll-finger courier-2
`;

export interface PeopleOptions {
  name?: string | undefined;
  roles?: string | undefined;
  number?: string | undefined;
  reason?: string | undefined;
  none?: boolean | undefined;
  captures?: string | undefined;
  slot?: string | undefined;
}

/** The admin request for `people SUB ...` (without the PIN: `pin` says one must be read). Throws PeopleUsage. */
export function peopleRequest(rest: string[], o: PeopleOptions): { cmd: string; args: Record<string, unknown>; pin: boolean } {
  const [sub, ...more] = rest;
  const id = () => {
    if (more.length < 1) throw new PeopleUsage(`people ${sub} needs a person id`);
    return more[0]!;
  };
  const noMore = (n: number) => {
    if (more.length > n) throw new PeopleUsage(`people ${sub}: unexpected "${more[n]}"${sub === "set-pin" ? " (a PIN is never given on the command line: it is asked for)" : ""}`);
  };
  switch (sub) {
    case "list":
      noMore(0);
      return { cmd: "people-list", args: {}, pin: false };
    case "add": {
      const person = id();
      noMore(1);
      if (!o.name) throw new PeopleUsage('people add needs --name "NAME"');
      if (!o.roles) throw new PeopleUsage("people add needs --roles (recipient, courier, staff, technician; comma-separated)");
      return { cmd: "people-add", args: { person, name: o.name, roles: o.roles.split(",").map((r) => r.trim()), ...(o.number ? { number: o.number } : {}) }, pin: false };
    }
    case "enable":
    case "disable": {
      const person = id();
      noMore(1);
      return { cmd: `people-${sub}`, args: { person, ...(o.reason ? { reason: o.reason } : {}) }, pin: false };
    }
    case "set-pin": {
      const person = id();
      noMore(1);
      return { cmd: "people-set-pin", args: { person, pin: null }, pin: !o.none };
    }
    case "set-badge": {
      const person = id();
      return { cmd: "people-set-badge", args: { person, badges: more.slice(1) }, pin: false };
    }
    case "enroll-finger": {
      const person = id();
      noMore(1);
      const captures = o.captures === undefined ? 2 : Number(o.captures);
      if (captures !== 2 && captures !== 3) throw new PeopleUsage("people enroll-finger: --captures is 2 or 3");
      return { cmd: "people-enroll-finger", args: { person, captures }, pin: false };
    }
    case "remove-finger": {
      const person = id();
      noMore(1);
      const slot = o.slot === undefined ? undefined : Number(o.slot);
      if (slot !== undefined && (!Number.isInteger(slot) || slot < 0)) throw new PeopleUsage("people remove-finger: --slot is a slot number (lockerctl people list)");
      return { cmd: "people-remove-finger", args: { person, ...(slot !== undefined ? { slot } : {}) }, pin: false };
    }
    case undefined:
      throw new PeopleUsage("people needs a subcommand: list, add, set-pin, set-badge, disable, enable, enroll-finger, remove-finger");
    default:
      throw new PeopleUsage(`people: unknown subcommand "${sub}" (list, add, set-pin, set-badge, disable, enable, enroll-finger, remove-finger)`);
  }
}

export function formatPeople(r: { owner: string; people: PersonRow[] }, style: Style): string {
  const head = `people directory (owner: ${r.owner === "server" ? "the server: change people there" : "lockerctl"}), ${r.people.length} people`;
  if (!r.people.length) return `${head}\n  nobody yet: lockerctl people add ID --name "NAME" --roles ROLE`;
  const rows = r.people.map((p) => [p.id, p.name, p.roles.join(","), p.number ?? "", p.pin ? "yes" : "", p.badges ? String(p.badges) : "", p.fingers ? String(p.fingers) : "", p.active ? "active" : "disabled"]);
  const header = ["ID", "NAME", "ROLES", "NUMBER", "PIN", "BADGES", "FINGERS", "STATE"];
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i]!)).join("  ").trimEnd();
  return [head, paint(style, "bold", line(header)), ...rows.map((row) => (row[7] === "disabled" ? paint(style, "dim", line(row)) : line(row)))].join("\n");
}

export function renderPeople(cmd: string, result: unknown, style: Style): string {
  if (cmd === "people-list") return formatPeople(PeopleResult.parse(result), style);
  if (cmd === "people-enroll-finger") {
    const r = FingerEnrolled.parse(result);
    return `${r.person}: finger enrolled in slot ${r.slot} of ${r.reader} (${r.fingers} finger(s) now)`;
  }
  if (cmd === "people-remove-finger") {
    const r = FingersRemoved.parse(result);
    if (!r.withdrawn) return `${r.person}: no fingers to remove`;
    const waiting = r.withdrawn - r.deleted;
    return `${r.person}: ${r.withdrawn} finger(s) withdrawn (they open nothing); ${r.deleted} deleted from the module${waiting ? `, ${waiting} to delete when it answers again` : ""}`;
  }
  const p = PersonRow.parse(result);
  return `${p.id} (${p.name}): ${p.active ? "active" : "disabled"}, roles ${p.roles.join(",")}${p.number ? `, number ${p.number}` : ""}, PIN ${p.pin ? "set" : "none"}, ${p.badges} badge(s)`;
}

// ── reading a PIN ────────────────────────────────────────────────────────────

/** The PIN twice: on a terminal without echo; else two lines of stdin. They must match. */
export async function readPinTwice(input: NodeJS.ReadStream = process.stdin, err: NodeJS.WritableStream = process.stderr): Promise<string> {
  if (!input.isTTY) {
    const [a, b] = await readLines(input, 2);
    if (a === undefined || b === undefined) throw new PeopleUsage("set-pin: expected the PIN twice, one per line, on stdin");
    if (a !== b) throw new PeopleUsage("set-pin: the two PINs differ: nothing changed");
    return a;
  }
  // Echo goes off before the first prompt is shown and stays off until both entries are read:
  // a person who types as soon as the prompt appears (or types ahead) is never echoed.
  input.setRawMode(true);
  try {
    const a = await readHidden(input, err, "New PIN (digits, not shown): ");
    const b = await readHidden(input, err, "Type it again: ");
    if (a !== b) throw new PeopleUsage("set-pin: the two PINs differ: nothing changed");
    return a;
  } finally {
    input.setRawMode(false);
    input.pause();
  }
}

/** One hidden entry; the terminal is already raw (no echo). Keys typed ahead wait in the stream. */
function readHidden(input: NodeJS.ReadStream, err: NodeJS.WritableStream, prompt: string): Promise<string> {
  err.write(prompt);
  input.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    let value = "";
    let rest = "";
    const done = (fn: () => void) => {
      input.off("data", onData);
      input.pause();
      if (rest) input.unshift(rest);
      err.write("\n");
      fn();
    };
    const onData = (chunk: string) => {
      const chars = [...chunk];
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === "\r" || ch === "\n") {
          // A CR LF pair is one Enter; what follows belongs to the next entry.
          const skip = ch === "\r" && chars[i + 1] === "\n" ? 2 : 1;
          rest = chars.slice(i + skip).join("");
          return done(() => resolve(value));
        }
        if (ch === "\u0003" || ch === "\u0004") return done(() => reject(new PeopleUsage("set-pin: cancelled: nothing changed")));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    input.on("data", onData);
    input.resume();
  });
}

function readLines(input: NodeJS.ReadableStream, n: number): Promise<string[]> {
  return new Promise((resolve) => {
    let buf = "";
    const finish = () => {
      input.off("data", onData);
      input.off("end", finish);
      input.pause();
      const lines = buf.split(/\r?\n/);
      if (lines.at(-1) === "") lines.pop();
      resolve(lines.slice(0, n));
    };
    const onData = (chunk: Buffer | string) => {
      buf += chunk.toString();
      if (buf.split("\n").length > n) finish();
    };
    input.on("data", onData);
    input.on("end", finish);
  });
}

// ── backup ───────────────────────────────────────────────────────────────────

export const BACKUP_HELP = `lockerctl backup — a consistent copy of the bank: ledger and device key

Usage: lockerctl backup FILE

The running lockerd copies its ledger online (SQLite's backup API; the bank keeps serving) with
its device key into one file, streamed here and written as FILE, mode 0600, as your own user.
It holds every secret's key: keep it as safe as the bank itself. Put it back with
\`lockerd restore FILE --data DIR\` (lockerd stopped). An existing FILE is never overwritten.

Example:
  lockerctl backup /root/bank-$(date +%F).lockerd-backup
`;

/** Stream a backup into FILE (0600): a partial file first, renamed once its sha256 matches. */
export async function runBackup(client: AdminClient, file: string, user: string): Promise<BackupResult> {
  if (existsSync(file)) throw new PeopleUsage(`${file} exists: choose another name (a backup never overwrites a file)`);
  const partial = `${file}.partial`;
  const fd = openSync(partial, "wx", 0o600);
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    const result = BackupResult.parse(
      await client.request("backup" as never, {}, user, (item: StreamItem) => {
        if (item.kind !== "chunk") return;
        const buf = Buffer.from(item.data, "base64");
        hash.update(buf);
        bytes += writeSync(fd, buf);
      }),
    );
    if (bytes !== result.bytes || hash.digest("hex") !== result.sha256) {
      throw new Error(`the backup arrived damaged (${bytes} of ${result.bytes} bytes, or a checksum mismatch): ${file} not written`);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(partial, file);
    return result;
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* closed */
    }
    unlinkSync(partial);
    throw e;
  }
}

export function formatBackup(file: string, r: BackupResult): string {
  return [
    `backup written: ${file} (${(r.bytes / 2 ** 20).toFixed(1)} MB, mode 0600)`,
    `  bank ${r.bank}, key ${r.keyFingerprint}, ${r.events} events up to seq ${r.headSeq}`,
    `  sha256 ${r.sha256}`,
    "  restore with: lockerd restore FILE --data DIR (lockerd stopped)",
  ].join("\n");
}

/** An enrolment's step, as the technician's terminal shows it. */
export function fingerStep(item: StreamItem): string | undefined {
  if (item.kind !== "finger") return undefined;
  switch (item.step) {
    case "place":
      return `  touch ${item.n}/${item.of}: the person puts the finger on the sensor`;
    case "again":
      return `  again (${item.why ?? "unclear image"}): touch ${item.n}/${item.of}`;
    case "lift":
      return "  lift the finger";
    case "stored":
      return `  stored in slot ${item.slot}`;
  }
}
