// Fake gpiod tools for tests: gpiodetect, gpioget, gpioset and gpiomon as Debian ships them, in
// both dialects, over the fake character device of kernel.ts (protocol.ts). Run as
//
//   node dist/scripts/gpiod-emulator/tools.js <tool> [ARGS...]
//
// from tiny shell scripts named after the tools, put first on PATH (test/helpers/gpiod.ts writes
// them), so the driver under test starts real processes, writes to real pipes and parses what they
// print. Environment:
//   GPIOD_EMU_SOCKET       the kernel's unix socket (required)
//   GPIOD_EMU_VERSION      "1.6.3" (Bookworm) or "2.1.3" (Trixie, the default); any 1.x / 2.x
//   GPIOD_EMU_INTERACTIVE  "0": a v2 gpioset built without --enable-gpioset-interactive (no -i)
//
// What is reproduced, from the man pages and `--help` of gpiod 1.6.3 and libgpiod v2's tools/*.c:
// option parsing as getopt_long does it (its messages, "try <tool> --help", exit 1), chip lookup
// (v1: number, label, name or path; v2: number, name or path), line resolution (v2: offsets with
// -c, else names), the output formats (gpiodetect's list, gpioget's values, gpiomon's events and
// --format specifiers, v2 banners, gpioset's interactive prompt and answers), error messages
// ("<tool>: <what>: <strerror>"), how each tool holds its lines and how it ends: v1 gpioset
// --mode=wait leaves on a newline or EOF, --mode=signal on SIGTERM; v2 gpioset holds until killed,
// or with -i until `exit`; v1 gpiomon's output is block-buffered unless -b. Not reproduced:
// gpioinfo, gpionotify, gpiofind, -b/--background and -z/--daemonize, -t/--toggle, timestamps from
// a real clock source (the kernel's monotonic nanoseconds since it started are used).
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { strerror, type ChipInfo, type Edge, type KernelEvent, type Level, type Reply, type Request } from "./protocol.js";

type RequestBody = Request extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

const tool = process.argv[2] ?? "";
const argv = process.argv.slice(3);
const version = process.env.GPIOD_EMU_VERSION ?? "2.1.3";
const V1 = version.startsWith("1.");
const INTERACTIVE = !V1 && process.env.GPIOD_EMU_INTERACTIVE !== "0";
const prog = tool;

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

// ── output ──────────────────────────────────────────────────────────────

/** stdout as C stdio has it: to a pipe, block-buffered (4096) until fflush or exit. */
const out = {
  buf: "",
  lineBuffered: false,
  write(s: string): void {
    this.buf += s;
    if (this.buf.length >= 4096 || (this.lineBuffered && this.buf.includes("\n"))) this.flush();
  },
  flush(): void {
    if (this.buf) process.stdout.write(this.buf);
    this.buf = "";
  },
};
process.stdout.on("error", () => process.exit(141)); // EPIPE: a C program dies of SIGPIPE here

function exit(code: number): never {
  out.flush();
  throw new Exit(code);
}

function die(msg: string): never {
  out.flush();
  process.stderr.write(`${prog}: ${msg}\n`);
  throw new Exit(1);
}

function diePerror(msg: string, errno: string): never {
  die(`${msg}: ${strerror(errno)}`);
}

function printVersion(): never {
  out.write(`${prog} (libgpiod) v${version}\n`);
  out.write(V1 ? "Copyright (C) 2017-2018 Bartosz Golaszewski\nLicense: LGPLv2.1\n" : "Copyright (C) 2017-2023 Bartosz Golaszewski\nLicense: GPL-2.0-or-later\n");
  out.write("This is free software: you are free to change and redistribute it.\nThere is NO WARRANTY, to the extent permitted by law.\n");
  exit(0);
}

// ── getopt_long ─────────────────────────────────────────────────────────

interface LongOpt {
  name: string;
  arg: boolean;
  /** The short option it stands for (or a private key for long-only options). */
  key: string;
}

/** getopt_long with a "+" optstring: options until the first non-option; glibc's messages. */
function getopt(args: readonly string[], shortopts: string, longopts: readonly LongOpt[]): { opts: [string, string][]; rest: string[] } {
  const takes = new Map<string, boolean>();
  for (let i = 0; i < shortopts.length; i++) {
    const c = shortopts[i]!;
    if (c === "+") continue;
    takes.set(c, shortopts[i + 1] === ":");
    if (shortopts[i + 1] === ":") i++;
  }
  const opts: [string, string][] = [];
  let i = 0;
  const bad = (msg: string): never => {
    process.stderr.write(`${prog}: ${msg}\n`);
    die(`try ${prog} --help`);
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a.startsWith("--")) {
      const [name, value] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
      const exact = longopts.find((l) => l.name === name);
      const prefixed = longopts.filter((l) => l.name.startsWith(name));
      const l = exact ?? (prefixed.length === 1 ? prefixed[0] : undefined);
      if (!l) bad(prefixed.length > 1 ? `option '${a}' is ambiguous` : `unrecognized option '${a}'`);
      if (l!.arg) {
        const v = value ?? args[++i];
        if (v === undefined) bad(`option '--${l!.name}' requires an argument`);
        opts.push([l!.key, v!]);
      } else {
        if (value !== undefined) bad(`option '--${l!.name}' doesn't allow an argument`);
        opts.push([l!.key, ""]);
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const t = takes.get(c);
        if (t === undefined) bad(`invalid option -- '${c}'`);
        if (t) {
          const v = j + 1 < a.length ? a.slice(j + 1) : args[++i];
          if (v === undefined) bad(`option requires an argument -- '${c}'`);
          opts.push([c, v!]);
          break;
        }
        opts.push([c, ""]);
      }
      continue;
    }
    break; // "+": the first non-option ends the options
  }
  return { opts, rest: args.slice(i) };
}

// ── the fake /dev ───────────────────────────────────────────────────────

class Dev {
  private readonly socket: Socket;
  private nextId = 1;
  private buf = "";
  private readonly pending = new Map<number, (r: Reply) => void>();
  onEvent: (e: KernelEvent) => void = () => undefined;

  constructor(path: string) {
    this.socket = connect(path);
    this.socket.setEncoding("utf8");
    this.socket.on("data", (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(this.buf.slice(0, i)) as Reply | KernelEvent;
        this.buf = this.buf.slice(i + 1);
        if ("ev" in msg) this.onEvent(msg);
        else this.pending.get(msg.id)?.(msg);
      }
    });
    this.socket.on("error", () => undefined);
    this.socket.on("close", () => {
      process.stderr.write(`${prog}: emulator: the fake GPIO device went away\n`);
      process.exit(1);
    });
  }

  call(req: RequestBody): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, (r) => {
        this.pending.delete(id);
        resolve(r);
      });
      this.socket.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  }

  /** Releases every line this process holds (before it exits, as closing its files would). */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await this.call({ op: "bye" });
    this.socket.removeAllListeners("close");
    this.socket.destroy();
  }
}

const socketPath = process.env.GPIOD_EMU_SOCKET;
let dev: Dev | undefined;

/** The process ends: stdout flushed, lines released, then exit(code) (or death by `signal`). */
let ending = false;
function finish(code: number, signal?: NodeJS.Signals): void {
  if (ending) return;
  ending = true;
  out.flush();
  const end = () => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal); // no handler left: the default action, death by the signal
    } else process.exit(code);
  };
  if (dev) void dev.close().then(end, end);
  else end();
}

async function chips(): Promise<ChipInfo[]> {
  return (await dev!.call({ op: "list" })).chips ?? [];
}

/** v1 gpiod_chip_open_lookup(): a number, a label, a name, or a /dev path. */
async function lookupV1(id: string): Promise<ChipInfo | string> {
  const all = await chips();
  const name = /^\d+$/.test(id) ? `gpiochip${id}` : (all.find((c) => c.label === id)?.name ?? (id.startsWith("/dev/") ? id.slice(5) : id));
  const r = await dev!.call({ op: "open", chip: name });
  return r.chip ?? r.errno ?? "ENOENT";
}

/** v2 chip_path_lookup(): a number, a name or a path; null when it is no GPIO chip device. */
function chipPathV2(id: string): string {
  return /^\d+$/.test(id) ? `/dev/gpiochip${id}` : id.includes("/") ? id : `/dev/${id}`;
}

interface Resolved {
  chip: ChipInfo;
  path: string;
  lines: { id: string; offset: number }[];
}

/** v2 resolve_lines() + validate_resolution(): ids are offsets on -c's chip, else line names. */
async function resolveV2(ids: readonly string[], chipId: string | undefined, byName: boolean): Promise<Resolved> {
  let candidates: { info: ChipInfo | null; path: string }[];
  if (chipId !== undefined) {
    const path = chipPathV2(chipId);
    const listed = (await chips()).find((c) => `/dev/${c.name}` === path);
    if (!listed) die(`cannot find GPIO chip character device '${chipId}'`);
    candidates = [{ info: listed, path }];
  } else {
    candidates = (await chips()).map((c) => ({ info: c, path: `/dev/${c.name}` }));
  }
  const found = new Map<string, { chip: ChipInfo; path: string; offset: number }>();
  for (const c of candidates) {
    const r = await dev!.call({ op: "open", chip: c.info!.name });
    if (!r.chip) {
      if (r.errno === "EACCES" && chipId === undefined) continue;
      diePerror(`unable to open chip '${c.path}'`, r.errno ?? "EIO");
    }
    const chip = r.chip;
    for (const id of ids) {
      if (found.has(id)) continue;
      if (chipId !== undefined && !byName && /^\d+$/.test(id) && Number(id) < chip.ngpio) {
        found.set(id, { chip, path: c.path, offset: Number(id) });
        continue;
      }
      const offset = chip.names.indexOf(id);
      if (offset >= 0) found.set(id, { chip, path: c.path, offset });
    }
  }
  let valid = true;
  const lines: { id: string; offset: number }[] = [];
  let chip: ChipInfo | undefined;
  let path = "";
  ids.forEach((id, i) => {
    const f = found.get(id);
    if (!f) {
      valid = false;
      process.stderr.write(chipId !== undefined && !byName && /^\d+$/.test(id) ? `${prog}: offset ${id} is out of range on chip '${chipId}'\n` : `${prog}: cannot find line '${id}'\n`);
      return;
    }
    const same = lines.findIndex((l) => l.offset === f.offset && chip?.name === f.chip.name);
    if (same >= 0) {
      valid = false;
      process.stderr.write(`${prog}: lines '${ids[same]}' and '${id}' are the same line\n`);
      return;
    }
    if (chip && chip.name !== f.chip.name) die("emulator: lines on several chips are not emulated");
    chip = f.chip;
    path = f.path;
    lines[i] = { id, offset: f.offset };
  });
  if (!valid || !chip) exit(1);
  return { chip, path, lines };
}

const LEVEL_WORD = (v: Level) => (v ? "active" : "inactive");

function parseValueV2(s: string): Level | null {
  if (["1", "active", "on", "true"].includes(s)) return 1;
  if (["0", "inactive", "off", "false"].includes(s)) return 0;
  return null;
}

/** v2 "line=value" or "\"line\"=value". */
function parseLineValueV2(lv: string): { id: string; value: Level } | { error: string } {
  let id: string;
  let value: string;
  if (lv.startsWith('"')) {
    const at = lv.indexOf('"=', 1);
    if (at < 0) return { error: `invalid line value: '${lv}'` };
    id = lv.slice(1, at);
    value = lv.slice(at + 2);
  } else {
    const at = lv.indexOf("=");
    if (at < 0) return { error: `invalid line value: '${lv}'` };
    id = lv.slice(0, at);
    value = lv.slice(at + 1);
  }
  const v = parseValueV2(value);
  return v === null ? { error: `invalid line value: '${value}'` } : { id, value: v };
}

function onSignals(handler: () => void): void {
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

/** v2 parse_period(): "10" ms, "10us", "10ms", "2s", "1m". */
function parsePeriodUs(s: string): number | null {
  const m = /^(\d+)(us|ms|s|m)?$/.exec(s);
  if (!m) return null;
  const mult = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 }[m[2] ?? "ms"]!;
  return Number(m[1]) * mult;
}

// ── gpiodetect ──────────────────────────────────────────────────────────

/** The options libgpiod v2's gpioget, gpioset and gpiomon share (their long names and letters). */
const V2_COMMON: readonly LongOpt[] = [
  { name: "active-low", arg: false, key: "l" },
  { name: "bias", arg: true, key: "b" },
  { name: "by-name", arg: false, key: "B" },
  { name: "chip", arg: true, key: "c" },
  { name: "consumer", arg: true, key: "C" },
  { name: "help", arg: false, key: "h" },
  { name: "strict", arg: false, key: "s" },
  { name: "unquoted", arg: false, key: "Q" },
  { name: "version", arg: false, key: "v" },
];

/** What those shared options set. */
interface V2Settings {
  chipId: string | undefined;
  consumer: string;
  byName: boolean;
  activeLow: boolean;
  unquoted: boolean;
}

/** One shared option applied (-v prints the version and exits); false: the tool's own. */
function v2Common(k: string, v: string, st: V2Settings): boolean {
  if (k === "v") printVersion();
  if (k === "c") st.chipId = v;
  else if (k === "C") st.consumer = v;
  else if (k === "B") st.byName = true;
  else if (k === "l") st.activeLow = true;
  else if (k === "Q") st.unquoted = true;
  else return false;
  return true;
}

async function gpiodetect(): Promise<void> {
  const { opts, rest } = getopt(argv, "+hv", [
    { name: "help", arg: false, key: "h" },
    { name: "version", arg: false, key: "v" },
  ]);
  for (const [k] of opts) {
    if (k === "h") {
      out.write(`Usage: ${prog} [OPTIONS]${V1 ? "" : " [chip]..."}\n\nList GPIO chips, print their labels and number of GPIO lines.\n`);
      exit(0);
    }
    if (k === "v") printVersion();
  }
  const all = await chips();
  const line = (c: ChipInfo) => out.write(`${c.name} [${c.label}] (${c.ngpio} lines)\n`);
  if (V1) {
    const opened: ChipInfo[] = [];
    for (const c of all) {
      const r = await dev!.call({ op: "open", chip: c.name });
      if (!r.chip) diePerror("unable to access GPIO chips", r.errno ?? "EIO");
      opened.push(r.chip);
    }
    opened.forEach(line);
    exit(0);
  }
  let ret = 0;
  const targets = rest.length ? rest.map((id) => ({ id, path: chipPathV2(id) })) : all.map((c) => ({ id: c.name, path: `/dev/${c.name}` }));
  for (const t of targets) {
    const c = all.find((x) => `/dev/${x.name}` === t.path);
    if (!c) {
      process.stderr.write(`${prog}: cannot find GPIO chip character device '${t.id}'\n`);
      ret = 1;
      continue;
    }
    const r = await dev!.call({ op: "open", chip: c.name });
    if (!r.chip) {
      process.stderr.write(`${prog}: unable to open chip '${t.path}': ${strerror(r.errno ?? "EIO")}\n`);
      ret = 1;
      continue;
    }
    line(r.chip);
  }
  exit(ret);
}

// ── gpioget ─────────────────────────────────────────────────────────────

async function gpioget(): Promise<void> {
  if (V1) {
    const { opts, rest } = getopt(argv, "+hvlB:", [
      { name: "help", arg: false, key: "h" },
      { name: "version", arg: false, key: "v" },
      { name: "active-low", arg: false, key: "l" },
      { name: "bias", arg: true, key: "B" },
    ]);
    let activeLow = false;
    for (const [k] of opts) {
      if (k === "h") {
        out.write(`Usage: ${prog} [OPTIONS] <chip name/number> <offset 1> <offset 2> ...\n\nRead line value(s) from a GPIO chip\n`);
        exit(0);
      }
      if (k === "v") printVersion();
      if (k === "l") activeLow = true;
    }
    if (rest.length < 1) die("gpiochip must be specified");
    if (rest.length < 2) die("at least one GPIO line offset must be specified");
    const offsets = rest.slice(1).map((o) => {
      if (!/^\d+$/.test(o)) die(`invalid GPIO offset: ${o}`);
      return Number(o);
    });
    const chip = await lookupV1(rest[0]!);
    if (typeof chip === "string") diePerror("error reading GPIO values", chip);
    const r = await dev!.call({ op: "request", chip: chip.name, offsets, direction: "input", edge: "none", consumer: "gpioget" });
    if (r.handle === undefined) diePerror("error reading GPIO values", r.errno ?? "EIO");
    const got = await dev!.call({ op: "get", handle: r.handle });
    if (!got.values) diePerror("error reading GPIO values", got.errno ?? "EIO");
    out.write(`${got.values.map(([, v]) => (activeLow ? 1 - v : v)).join(" ")}\n`);
    exit(0);
  }
  const { opts, rest } = getopt(argv, "+ab:c:C:hlp:sv", [
    ...V2_COMMON,
    { name: "as-is", arg: false, key: "a" },
    { name: "hold-period", arg: true, key: "p" },
    { name: "numeric", arg: false, key: "N" },
  ]);
  const st: V2Settings = { chipId: undefined, consumer: "gpioget", byName: false, activeLow: false, unquoted: false };
  let numeric = false;
  for (const [k, v] of opts) {
    if (k === "h") {
      out.write(`Usage: ${prog} [OPTIONS] <line>...\n\nRead values of GPIO lines.\n\nOptions:\n  -a, --as-is\n  -c, --chip <chip>\n  -C, --consumer <name>\n      --numeric\n      --unquoted\n`);
      exit(0);
    }
    if (!v2Common(k, v, st) && k === "N") numeric = true;
  }
  const { chipId, consumer, byName, activeLow, unquoted } = st;
  if (rest.length < 1) die("at least one GPIO line must be specified");
  const res = await resolveV2(rest, chipId, byName);
  const r = await dev!.call({ op: "request", chip: res.chip.name, offsets: res.lines.map((l) => l.offset), direction: "input", edge: "none", consumer });
  if (r.handle === undefined) diePerror("unable to request lines", r.errno ?? "EIO");
  const got = await dev!.call({ op: "get", handle: r.handle });
  if (!got.values) diePerror("unable to read GPIO line values", got.errno ?? "EIO");
  const vals = got.values.map(([, v]) => (activeLow ? ((1 - v) as Level) : v));
  if (numeric) out.write(`${vals.join(" ")}\n`);
  else out.write(`${res.lines.map((l, i) => `${unquoted ? l.id : `"${l.id}"`}=${LEVEL_WORD(vals[i]!)}`).join(" ")}\n`);
  exit(0);
}

// ── gpioset ─────────────────────────────────────────────────────────────

async function gpiosetV1(): Promise<void> {
  const { opts, rest } = getopt(argv, "+hvlB:D:m:s:u:b", [
    { name: "help", arg: false, key: "h" },
    { name: "version", arg: false, key: "v" },
    { name: "active-low", arg: false, key: "l" },
    { name: "bias", arg: true, key: "B" },
    { name: "drive", arg: true, key: "D" },
    { name: "mode", arg: true, key: "m" },
    { name: "sec", arg: true, key: "s" },
    { name: "usec", arg: true, key: "u" },
    { name: "background", arg: false, key: "b" },
  ]);
  let mode = "exit";
  let sec = 0;
  let usec = 0;
  let background = false;
  let activeLow = false;
  for (const [k, v] of opts) {
    if (k === "h") {
      out.write(
        `Usage: ${prog} [OPTIONS] <chip name/number> <offset1>=<value1> <offset2>=<value2> ...\n\n` +
          "Set GPIO line values of a GPIO chip and maintain the state until the process exits\n\nOptions:\n" +
          "  -m, --mode=[exit|wait|time|signal] (defaults to 'exit'):\n  -s, --sec=SEC:\n  -u, --usec=USEC:\n  -b, --background:\n",
      );
      exit(0);
    }
    if (k === "v") printVersion();
    if (k === "l") activeLow = true;
    if (k === "m") {
      if (!["exit", "wait", "time", "signal"].includes(v)) die(`invalid mode: ${v}`);
      mode = v;
    }
    if (k === "s") {
      if (!/^\d+$/.test(v)) die(`invalid time value in seconds: ${v}`);
      sec = Number(v);
    }
    if (k === "u") {
      if (!/^\d+$/.test(v)) die(`invalid time value in microseconds: ${v}`);
      usec = Number(v);
    }
    if (k === "b") background = true;
  }
  if (mode !== "time" && (sec || usec)) die("can't specify wait time in this mode");
  if (mode !== "signal" && mode !== "time" && background) die("can't daemonize in this mode");
  if (background) die("emulator: --background is not emulated");
  if (rest.length < 1) die("gpiochip must be specified");
  if (rest.length < 2) die("at least one GPIO line offset to value mapping must be specified");
  const pairs = rest.slice(1).map((lv) => {
    const m = /^(\d+)=(-?\d+)/.exec(lv);
    if (!m) die(`invalid offset<->value mapping: ${lv}`);
    const value = Number(m![2]);
    if (value !== 0 && value !== 1) die(`value must be 0 or 1: ${lv}`);
    return [Number(m![1]), value as Level] as const;
  });
  const chip = await lookupV1(rest[0]!);
  if (typeof chip === "string") diePerror("error setting the GPIO line values", chip);
  const r = await dev!.call({
    op: "request",
    chip: chip.name,
    offsets: pairs.map(([o]) => o),
    direction: "output",
    values: pairs.map(([, v]) => (activeLow ? ((1 - v) as Level) : v)),
    edge: "none",
    consumer: "gpioset",
  });
  if (r.handle === undefined) diePerror("error setting the GPIO line values", r.errno ?? "EIO");
  const done = () => finish(0);
  switch (mode) {
    case "exit":
      return done();
    case "wait":
      // getchar(): one character, or EOF
      process.stdin.once("data", done);
      process.stdin.once("end", done);
      return;
    case "time":
      setTimeout(done, sec * 1000 + usec / 1000);
      return;
    case "signal":
      onSignals(done);
      return;
  }
}

async function gpiosetV2(): Promise<void> {
  const longopts: LongOpt[] = [
    ...V2_COMMON,
    { name: "banner", arg: false, key: "-" },
    { name: "daemonize", arg: false, key: "z" },
    { name: "drive", arg: true, key: "d" },
    { name: "hold-period", arg: true, key: "p" },
    ...(INTERACTIVE ? [{ name: "interactive", arg: false, key: "i" }] : []),
    { name: "toggle", arg: true, key: "t" },
  ];
  const { opts, rest } = getopt(argv, INTERACTIVE ? "+b:c:C:d:hilp:st:vz" : "+b:c:C:d:hlp:st:vz", longopts);
  const st: V2Settings = { chipId: undefined, consumer: "gpioset", byName: false, activeLow: false, unquoted: false };
  let banner = false;
  let interactive = false;
  let holdUs = 0;
  for (const [k, v] of opts) {
    if (k === "h") {
      out.write(
        `Usage: ${prog} [OPTIONS] <line=value>...\n\nSet values of GPIO lines.\n\nOptions:\n      --banner\t\tdisplay a banner on successful startup\n` +
          `  -c, --chip <chip>\trestrict scope to a particular chip\n  -C, --consumer <name>\tconsumer name applied to requested lines (default is 'gpioset')\n` +
          (INTERACTIVE ? "  -i, --interactive\tset the lines then wait for additional set commands\n" : "") +
          "  -p, --hold-period <period>\n  -t, --toggle <period>[,period]...\n      --unquoted\tdon't quote line names\n  -z, --daemonize\n",
      );
      exit(0);
    }
    if (v2Common(k, v, st)) continue;
    if (k === "-") banner = true;
    if (k === "i") interactive = true;
    if (k === "p") {
      const p = parsePeriodUs(v);
      if (p === null) die(`invalid period: ${v}`);
      holdUs = p;
    }
    if (k === "t" || k === "z") die(`emulator: -${k} is not emulated`);
  }
  const { chipId, consumer, byName, activeLow, unquoted } = st;
  if (rest.length < 1) die("at least one GPIO line value must be specified");
  const parsed = rest.map((lv) => {
    const p = parseLineValueV2(lv);
    if ("error" in p) {
      process.stderr.write(`${prog}: ${p.error}\n`);
      exit(1);
    }
    return p;
  });
  const res = await resolveV2(
    parsed.map((p) => p.id),
    chipId,
    byName,
  );
  const values = new Map<string, Level>(parsed.map((p) => [p.id, p.value]));
  const phys = (v: Level): Level => (activeLow ? ((1 - v) as Level) : v);
  const r = await dev!.call({
    op: "request",
    chip: res.chip.name,
    offsets: res.lines.map((l) => l.offset),
    direction: "output",
    values: res.lines.map((l) => phys(values.get(l.id)!)),
    edge: "none",
    consumer,
  });
  if (r.handle === undefined) diePerror(`unable to request lines on chip '${res.path}'`, r.errno ?? "EIO");
  const handle = r.handle;
  if (banner) {
    const ids = res.lines.map((l) => l.id);
    out.write(ids.length > 1 ? `Setting lines ${ids.slice(0, -1).map((i) => `'${i}', `).join("")}and '${ids.at(-1)}'...\n` : `Setting line '${ids[0]}'...\n`);
    out.flush();
  }
  if (holdUs) await new Promise((resolve) => setTimeout(resolve, holdUs / 1000));
  // no handler of its own: SIGTERM and SIGINT kill it (the lines are released first, as the kernel would)
  process.once("SIGTERM", () => finish(143, "SIGTERM"));
  process.once("SIGINT", () => finish(130, "SIGINT"));
  if (!interactive) return; // holds until killed
  const apply = async () => {
    const s = await dev!.call({ op: "set", handle, values: res.lines.map((l) => [l.offset, phys(values.get(l.id)!)]) });
    if (s.errno) process.stderr.write(`${prog}: unable to set values on '${res.chip.name}': ${strerror(s.errno)}\n`);
  };
  const known = (ids: string[]) => {
    let ok = true;
    for (const id of ids) {
      if (!values.has(id)) {
        out.write(`unknown line: '${id}'\n`);
        ok = false;
      }
    }
    return ok;
  };
  const show = (ids: readonly string[]) => out.write(`${ids.map((id) => `${unquoted ? id : `"${id}"`}=${LEVEL_WORD(values.get(id)!)}`).join(" ")}\n`);
  const unquote = (w: string) => (w.startsWith('"') && w.endsWith('"') && w.length > 1 ? w.slice(1, -1) : w);
  const prompt = () => {
    if (!process.stdout.isTTY) out.write("gpioset> ");
    out.flush();
  };
  const rl = createInterface({ input: process.stdin, terminal: false });
  prompt();
  for await (const raw of rl) {
    const line = raw.trimEnd();
    const words = line.split(/\s+/).filter(Boolean);
    if (!words.length) {
      prompt();
      continue;
    }
    const [cmd, ...params] = words as [string, ...string[]];
    if (words.length > res.lines.length + 1) out.write("too many command parameters provided\n");
    else if (cmd === "get") {
      if (!params.length) show(res.lines.map((l) => l.id));
      else if (known(params.map(unquote))) show(params.map(unquote));
    } else if (cmd === "set") {
      if (!params.length) out.write("at least one GPIO line value must be specified\n");
      else {
        const lvs = params.map(parseLineValueV2);
        const bad = lvs.find((p) => "error" in p);
        if (bad && "error" in bad) out.write(`${bad.error}\n`);
        else {
          const ok = lvs as { id: string; value: Level }[];
          if (known(ok.map((p) => p.id))) {
            for (const p of ok) values.set(p.id, p.value);
            await apply();
          }
        }
      }
    } else if (cmd === "toggle") {
      const ids = params.length ? params.map(unquote) : [...values.keys()];
      if (known(ids)) for (const id of ids) values.set(id, (1 - values.get(id)!) as Level);
      await apply();
    } else if (cmd === "sleep") {
      const p = params.length === 1 ? parsePeriodUs(params[0]!) : null;
      if (!params.length) out.write("a period must be specified\n");
      else if (params.length > 1) out.write("only one period can be specified\n");
      else if (p === null) out.write(`invalid period: '${params[0]}'\n`);
      else await new Promise((resolve) => setTimeout(resolve, p / 1000));
    } else if (cmd === "exit") {
      finish(0);
      return;
    } else if (cmd === "help") {
      out.write("COMMANDS:\n\n    exit\n    get [line]...\n    help\n    set <line=value>...\n    sleep <period>\n    toggle [line]...\n");
    } else {
      out.write(`unknown command: '${cmd}'\nTry the 'help' command\n`);
    }
    prompt();
  }
  // EOF: readline() returns NULL and gpioset goes round again, printing its prompt each time, until
  // a write to a closed stdout kills it (SIGPIPE). Modelled at a gentler pace than a busy loop.
  setInterval(() => guard(prompt), 20);
}

// ── gpiomon ─────────────────────────────────────────────────────────────

function formatEvent(fmt: string, e: { offset: number; rising: boolean; sec: number; nsec: number }, chip: ChipInfo): string {
  let s = "";
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== "%") {
      s += c;
      continue;
    }
    const f = fmt[i + 1];
    if (f === undefined) {
      s += "%";
      break;
    }
    i++;
    const ns = `${e.sec}.${String(e.nsec).padStart(9, "0")}`;
    if (V1) {
      if (f === "o") s += e.offset;
      else if (f === "e") s += e.rising ? "1" : "0";
      else if (f === "s") s += e.sec;
      else if (f === "n") s += e.nsec;
      else if (f === "%") s += "%";
      else s += `%${f}`;
      continue;
    }
    if (f === "o") s += e.offset;
    else if (f === "e") s += e.rising ? "1" : "2";
    else if (f === "E") s += e.rising ? "rising" : "falling";
    else if (f === "c") s += chip.name;
    else if (f === "l") s += chip.names[e.offset] ?? "unnamed";
    else if (f === "S") s += ns;
    else if (f === "U" || f === "L") s += `${new Date(e.sec * 1000).toISOString().slice(0, 19)}.${String(e.nsec).padStart(9, "0")}${f === "U" ? "Z" : ""}`;
    else if (f === "%") s += "%";
    else s += `%${f}`;
  }
  return `${s}\n`;
}

async function gpiomon(): Promise<void> {
  let fmt: string | undefined;
  let edge: Edge = "both";
  let wanted = 0;
  let quiet = false;
  let chipId: string | undefined;
  let consumer = "gpiomon";
  let banner = false;
  let byName = false;
  let activeLow = false;
  let rest: string[];
  if (V1) {
    const p = getopt(argv, "+hvln:srfbF:B:", [
      { name: "help", arg: false, key: "h" },
      { name: "version", arg: false, key: "v" },
      { name: "active-low", arg: false, key: "l" },
      { name: "bias", arg: true, key: "B" },
      { name: "num-events", arg: true, key: "n" },
      { name: "silent", arg: false, key: "s" },
      { name: "rising-edge", arg: false, key: "r" },
      { name: "falling-edge", arg: false, key: "f" },
      { name: "line-buffered", arg: false, key: "b" },
      { name: "format", arg: true, key: "F" },
    ]);
    let rising = false;
    let falling = false;
    for (const [k, v] of p.opts) {
      if (k === "h") {
        out.write(
          `Usage: ${prog} [OPTIONS] <chip name/number> <offset 1> <offset 2> ...\n\nWait for events on GPIO lines and print them to standard output\n\n` +
            "Options:\n  -n, --num-events=NUM:\n  -s, --silent:\n  -r, --rising-edge:\n  -f, --falling-edge:\n  -b, --line-buffered:\n  -F, --format=FMT\n",
        );
        exit(0);
      }
      if (k === "v") printVersion();
      if (k === "l") activeLow = true;
      if (k === "n") {
        if (!/^\d+$/.test(v)) die(`invalid number: ${v}`);
        wanted = Number(v);
      }
      if (k === "s") quiet = true;
      if (k === "r") rising = true;
      if (k === "f") falling = true;
      if (k === "b") out.lineBuffered = true;
      if (k === "F") fmt = v;
    }
    edge = rising && !falling ? "rising" : falling && !rising ? "falling" : "both";
    if (p.rest.length < 1) die("gpiochip must be specified");
    if (p.rest.length < 2) die("at least one GPIO line offset must be specified");
    for (const o of p.rest.slice(1)) if (!/^\d+$/.test(o)) die(`invalid GPIO offset: ${o}`);
    rest = p.rest;
  } else {
    const p = getopt(argv, "+b:c:C:e:E:hF:ln:p:qshv", [
      ...V2_COMMON,
      { name: "banner", arg: false, key: "-" },
      { name: "debounce-period", arg: true, key: "p" },
      { name: "edges", arg: true, key: "e" },
      { name: "event-clock", arg: true, key: "E" },
      { name: "format", arg: true, key: "F" },
      { name: "idle-timeout", arg: true, key: "i" },
      { name: "localtime", arg: false, key: "L" },
      { name: "num-events", arg: true, key: "n" },
      { name: "quiet", arg: false, key: "q" },
      { name: "silent", arg: false, key: "q" },
      { name: "utc", arg: false, key: "U" },
    ]);
    const st: V2Settings = { chipId, consumer, byName, activeLow, unquoted: false };
    for (const [k, v] of p.opts) {
      if (k === "h") {
        out.write(
          `Usage: ${prog} [OPTIONS] <line>...\n\nWait for events on GPIO lines and print them to standard output.\n\nOptions:\n      --banner\t\tdisplay a banner on successful startup\n` +
            "  -c, --chip <chip>\n  -C, --consumer <name>\n  -e, --edges <edges>\n  -F, --format <fmt>\n  -n, --num-events <num>\n  -q, --quiet\n",
        );
        exit(0);
      }
      if (v2Common(k, v, st)) continue;
      if (k === "-") banner = true;
      if (k === "e") {
        if (!["rising", "falling", "both"].includes(v)) die(`invalid edges: ${v}`);
        edge = v as Edge;
      }
      if (k === "E" && !["monotonic", "realtime", "hte"].includes(v)) die(`invalid event clock: ${v}`);
      if (k === "F") fmt = v;
      if (k === "n") {
        if (!/^\d+$/.test(v)) die(`invalid number: '${v}'`);
        wanted = Number(v);
      }
      if ((k === "p" || k === "i") && parsePeriodUs(v) === null) die(`invalid period: ${v}`);
      if (k === "q") quiet = true;
    }
    if (p.rest.length < 1) die("at least one GPIO line must be specified");
    if (p.rest.length > 64) die("too many lines given");
    ({ chipId, consumer, byName, activeLow } = st);
    rest = p.rest;
  }
  // active-low flips the sense of the edges, as the kernel does for an active-low request
  const kernelEdge: Edge = activeLow && edge !== "both" ? (edge === "rising" ? "falling" : "rising") : edge;
  let chip: ChipInfo;
  let ids: { id: string; offset: number }[];
  if (V1) {
    const c = await lookupV1(rest[0]!);
    if (typeof c === "string") diePerror("error waiting for events", c);
    chip = c;
    ids = rest.slice(1).map((o) => ({ id: o, offset: Number(o) }));
    const r = await dev!.call({ op: "request", chip: chip.name, offsets: ids.map((l) => l.offset), direction: "input", edge: kernelEdge, consumer: "gpiomon" });
    if (r.handle === undefined) diePerror("error waiting for events", r.errno ?? "EIO");
  } else {
    const res = await resolveV2(rest, chipId, byName);
    chip = res.chip;
    ids = res.lines;
    const r = await dev!.call({ op: "request", chip: chip.name, offsets: ids.map((l) => l.offset), direction: "input", edge: kernelEdge, consumer });
    if (r.handle === undefined) diePerror(`unable to request lines on chip ${res.path}`, r.errno ?? "EIO");
    if (banner) {
      out.write(rest.length > 1 ? `Monitoring lines ${rest.slice(0, -1).map((i) => `'${i}', `).join("")}and '${rest.at(-1)}'...\n` : `Monitoring line '${rest[0]}'...\n`);
    }
    out.flush(); // v2 flushes before each wait for events
  }
  let done = 0;
  dev!.onEvent = (e) =>
    guard(() => {
      if (e.ev === "gone") diePerror(V1 ? "error waiting for events" : "error reading line events", "ENODEV");
      const rising = activeLow ? !e.rising : e.rising;
      if (!quiet) {
        if (fmt !== undefined) out.write(formatEvent(fmt, { ...e, rising }, chip));
        else if (V1) out.write(`event: ${rising ? " RISING EDGE" : "FALLING EDGE"} offset: ${e.offset} timestamp: [${String(e.sec).padStart(8)}.${String(e.nsec).padStart(9, "0")}]\n`);
        else {
          const name = chip.names[e.offset];
          const id = name ? `${chipId !== undefined ? `${chip.name} ${e.offset} ` : ""}"${name}"` : `${chip.name} ${e.offset}`;
          out.write(`${e.sec}.${String(e.nsec).padStart(9, "0")}\t${rising ? "rising" : "falling"}\t${id}\n`);
        }
      }
      if (!V1) out.flush();
      if (wanted && ++done >= wanted) finish(0);
    });
  // v1 waits on a signalfd and leaves cleanly; v2 has no handler: killed by the signal
  process.once("SIGTERM", () => finish(0, V1 ? undefined : "SIGTERM"));
  process.once("SIGINT", () => finish(0, V1 ? undefined : "SIGINT"));
}

// ── main ────────────────────────────────────────────────────────────────

/** Runs `f`, turning an Exit into the process's exit (what exit(3) / die() do in C). */
function guard(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (e instanceof Exit) return finish(e.code);
    throw e;
  }
}

async function main(): Promise<void> {
  const tools: Record<string, () => Promise<void>> = { gpiodetect, gpioget, gpioset: V1 ? gpiosetV1 : gpiosetV2, gpiomon };
  const run = tools[tool];
  if (!run) {
    process.stderr.write(`gpiod-emulator: unknown tool "${tool}" (gpiodetect, gpioget, gpioset, gpiomon)\n`);
    process.exit(2);
  }
  // --help and --version need no device
  const needsDev = !argv.some((a) => a === "-h" || a === "--help" || a === "-v" || a === "--version");
  if (needsDev) {
    if (!socketPath) {
      process.stderr.write(`${prog}: emulator: GPIOD_EMU_SOCKET is not set\n`);
      process.exit(2);
    }
    dev = new Dev(socketPath);
    await dev!.call({ op: "hello", pid: process.pid, tool, argv });
  }
  await run();
}

main().catch((e: unknown) => {
  if (e instanceof Exit) return finish(e.code);
  process.stderr.write(`${prog}: emulator: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(70);
});
