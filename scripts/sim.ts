#!/usr/bin/env node
// `npm run sim`: a full-screen view of the simulated bank. Starts lockerd as a child (its logs go
// to <data>/lockerd.log) or attaches to a running one's sim socket; shows the compartments, the
// keypad display and recent events; sends keypad keys and `:` commands. With stdin not a terminal
// it reads one key run or command per line and prints events as text, for scripting.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { constants } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadConfigAtStart } from "../src/config/load.js";
import { isLockerError } from "../src/errors.js";
import { SimEvent, type SimRequest } from "../src/sim/protocol.js";
import { DAEMON_FLAGS } from "./daemon-flags.js";
import {
  clean,
  COMMAND_HELP,
  describe,
  diffState,
  formatEntry,
  keyRequests,
  mapInput,
  parseCommand,
  parseLine,
  pushLog,
  summarizeState,
  render,
  type Command,
  type KeyAction,
  type LogKind,
  type ViewModel,
} from "./sim-view.js";

const USAGE = `usage: sim [--config FILE] [--data DIR] [--attach SOCKET]

  --config FILE    bank configuration for the daemon it starts (default: config.example.json)
  --data DIR       the daemon's data directory (default: ./data); its log: DIR/lockerd.log
  --attach SOCKET  use a lockerd already running: connect to its sim socket, start nothing

Keys 0-9 * # go to the keypad; ':' then a command and Enter: ${COMMAND_HELP}; q quits.
With stdin not a terminal: one line each, keys (e.g. *2468#) or a command.
`;
const CONNECT_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const MAX_EVENT_BYTES = 8 * 1024 * 1024;
const PRINT_STYLE: Partial<Record<LogKind, string>> = { notify: "1;35", error: "31" };

interface Daemon {
  child: ChildProcess;
  log: string;
  logStart: number;
  exited: Promise<number>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const clock = () => new Date().toTimeString().slice(0, 8);

// ── the daemon and the socket ───────────────────────────────────────────────

function tryConnect(path: string): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect(path);
    s.once("error", rej);
    s.once("connect", () => {
      s.off("error", rej);
      res(s);
    });
  });
}

function startDaemon(config: string, data: string): Daemon {
  mkdirSync(data, { recursive: true, mode: 0o700 });
  const log = join(data, "lockerd.log");
  const fd = openSync(log, "a", 0o600);
  const logStart = statSync(log).size;
  const main = fileURLToPath(new URL("../lockerd/lockerd.js", import.meta.url)); // the shipped bundle, as npm start runs it
  const child = spawn(process.execPath, [...DAEMON_FLAGS, main, "--config", config, "--data", data], { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  const exited = new Promise<number>((res) => {
    child.once("error", () => res(127));
    child.once("exit", (code, signal) => res(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
  return { child, log, logStart, exited };
}

function running(d: Daemon): boolean {
  return d.child.exitCode === null && d.child.signalCode === null;
}

/** What the daemon wrote since we started it, last lines. */
function logTail(d: Daemon, lines = 15): string {
  try {
    const text = readFileSync(d.log).subarray(d.logStart).toString("utf8");
    return text.split("\n").filter(Boolean).slice(-lines).map((l) => `  ${l}`).join("\n");
  } catch (e) {
    return `  (cannot read ${d.log}: ${(e as Error).message})`;
  }
}

async function waitForSocket(path: string, d: Daemon): Promise<Socket> {
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      return await tryConnect(path);
    } catch {
      if (!running(d)) throw new Error(`lockerd exited (code ${await d.exited}) before its sim socket came up`);
      if (Date.now() > deadline) throw new Error(`no sim socket at ${path} after ${CONNECT_TIMEOUT_MS / 1000} s`);
      await sleep(100);
    }
  }
}

// ── setup ───────────────────────────────────────────────────────────────────

let opts: { config?: string; data?: string; attach?: string; help?: boolean };
try {
  opts = parseArgs({
    options: { config: { type: "string" }, data: { type: "string" }, attach: { type: "string" }, help: { type: "boolean" } },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  process.stderr.write(`sim: ${(e as Error).message}\n\n${USAGE}`);
  process.exit(64);
}
if (opts.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
let daemon: Daemon | undefined;
let socketPath: string;

if (opts.attach) {
  socketPath = resolve(opts.attach);
} else {
  const configFile = resolve(opts.config ?? "config.example.json");
  const data = resolve(opts.data ?? "data");
  try {
    const hw = (await loadConfigAtStart(configFile)).hardware;
    if (hw.profile !== "sim") throw new Error(`hardware.profile is "${hw.profile}": the sim view needs the sim profile`);
    socketPath = resolve(hw.socket ?? join(data, "sim.sock"));
  } catch (e) {
    const issues = isLockerError(e) ? ((e.context.issues as string[] | undefined) ?? [e.message]) : [String(e)];
    process.stderr.write(`sim: bad config ${configFile}:\n${issues.map((i) => `  - ${i}`).join("\n")}\n`);
    process.exit(78);
  }
  const existing = await tryConnect(socketPath).catch(() => undefined);
  if (existing) {
    existing.destroy();
    process.stderr.write(`sim: a lockerd is already listening on ${socketPath}; use --attach ${socketPath}\n`);
    process.exit(1);
  }
  daemon = startDaemon(configFile, data);
  process.on("exit", () => {
    if (daemon && running(daemon)) daemon.child.kill("SIGTERM"); // last resort; quit() waits properly
  });
}

let socket: Socket;
try {
  socket = daemon ? await waitForSocket(socketPath, daemon) : await tryConnect(socketPath);
} catch (e) {
  const err = e as NodeJS.ErrnoException;
  process.stderr.write(`sim: ${daemon ? err.message : `cannot connect to ${socketPath} (${err.code ?? err.message}): is lockerd running?`}\n`);
  if (daemon) {
    if (running(daemon)) daemon.child.kill("SIGTERM");
    const code = await daemon.exited;
    process.stderr.write(`last lines of ${daemon.log}:\n${logTail(daemon)}\n`);
    process.exit(code || 1);
  }
  process.exit(1);
}

// ── the session ─────────────────────────────────────────────────────────────

const model: ViewModel = {
  device: "",
  terminal: "",
  info: daemon ? `lockerd pid ${daemon.child.pid ?? "?"}, log ${daemon.log}` : `attached to ${socketPath}`,
  compartments: [],
  display: undefined,
  log: [],
  lastCode: undefined,
  mode: { kind: "normal" },
  status: undefined,
};
let quitting = false;
let drawQueued = false;
let lastEventAt = Date.now();
let fullState = false; // line mode: print the next state whole (asked for with `state`)
let outputGone = false; // stdout/stderr failed (hang-up, closed pipe): write nothing more
let restored = false;

function print(text: string, kind?: LogKind): void {
  if (outputGone) return;
  const style = color && kind ? PRINT_STYLE[kind] : undefined;
  process.stdout.write(style ? `\x1b[${style}m${text}\x1b[0m\n` : `${text}\n`);
}

function note(text: string, kind: LogKind): void {
  const entry = pushLog(model.log, clock(), text, kind);
  if (interactive) changed();
  else print(formatEntry(entry), kind);
}

function changed(): void {
  if (!interactive || drawQueued || quitting) return;
  drawQueued = true;
  setImmediate(() => {
    drawQueued = false;
    if (!quitting) draw(false);
  });
}

function draw(clear: boolean): void {
  if (outputGone) return;
  const { lines, cursor } = render(model, process.stdout.columns || 80, process.stdout.rows || 24, color);
  // Lines are exactly the width: no erase-to-end (it would eat the last column at the right edge).
  let out = `\x1b[?25l${clear ? "\x1b[2J" : ""}`;
  lines.forEach((l, i) => (out += `\x1b[${i + 1};1H${l}`));
  out += cursor ? `\x1b[${cursor.row};${cursor.col}H\x1b[?25h` : "";
  process.stdout.write(out);
}

function send(req: SimRequest): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(req)}\n`);
}

function onEvent(ev: SimEvent): void {
  lastEventAt = Date.now();
  switch (ev.ev) {
    case "hello":
      model.device = ev.device;
      model.terminal = ev.terminal;
      if (!interactive) print(`${clock()} connected to ${clean(ev.device)}, terminal ${clean(ev.terminal)}`);
      break;
    case "display":
      model.display = ev.lines.map(clean);
      if (!interactive) print(`${clock()} display | ${model.display.join(" | ")}`);
      break;
    case "state":
      if (!interactive) {
        const full = fullState || !model.compartments.length;
        for (const d of full ? [summarizeState(ev.compartments)] : diffState(model.compartments, ev.compartments)) print(`${clock()} ${clean(d)}`);
        fullState = false;
      }
      model.compartments = ev.compartments;
      break;
    case "notify":
      model.lastCode = { code: clean(ev.code), compartment: clean(ev.compartment), person: clean(ev.name ?? ev.person) };
      break;
  }
  const d = describe(ev);
  if (d) note(d.text, d.kind);
  else changed();
}

async function run(cmd: Command, text: string): Promise<void> {
  switch (cmd.t) {
    case "send":
      if (!interactive || cmd.reqs[0]?.op !== "keys") note(`> ${text}`, "local");
      for (const r of cmd.reqs) send(r);
      if (cmd.reqs.some((r) => r.op === "state")) fullState = true;
      model.status = undefined;
      break;
    case "error":
      note(`> ${text}: ${cmd.message}`, "error");
      model.status = { text: cmd.message, error: true };
      break;
    case "help":
      model.status = { text: COMMAND_HELP, error: false };
      if (!interactive) print(model.status.text);
      break;
    case "wait":
      await sleep(cmd.ms);
      break;
    case "quit":
      return quit(0);
  }
  changed();
}

function act(a: KeyAction): void {
  switch (a.t) {
    case "keys":
      void run({ t: "send", reqs: keyRequests(a.keys) }, a.keys);
      return;
    case "run":
      if (a.line.trim()) void run(parseCommand(a.line), a.line.trim());
      return;
    case "redraw":
      return draw(true);
    case "quit":
      void quit(0);
  }
}

function warn(text: string): void {
  if (!outputGone) process.stderr.write(`sim: ${text}\n`);
}

function restoreTerminal(): void {
  if (!interactive || restored) return;
  restored = true;
  try {
    process.stdin.setRawMode(false);
  } catch {
    /* the terminal is gone */
  }
  if (!outputGone) process.stdout.write("\x1b[0m\x1b[?25h\x1b[?1049l");
}

async function quit(code: number, message?: string): Promise<void> {
  if (quitting) return;
  quitting = true;
  restoreTerminal();
  process.stdin.pause();
  socket.destroy();
  if (message) warn(message);
  if (daemon) {
    const d = daemon;
    const died = !running(d);
    if (!died) d.child.kill("SIGTERM");
    const timer = setTimeout(() => {
      warn(`lockerd pid ${d.child.pid ?? "?"} did not stop in ${STOP_TIMEOUT_MS / 1000} s: SIGKILL`);
      d.child.kill("SIGKILL");
    }, STOP_TIMEOUT_MS);
    const rc = await d.exited;
    clearTimeout(timer);
    if (died || rc !== 0) {
      warn(`lockerd exited with code ${rc}; last lines of ${d.log}:\n${logTail(d)}`);
      code ||= 1;
    }
  }
  process.exit(code);
}

// Events: one JSON object per line.
let buf = "";
socket.setEncoding("utf8");
socket.on("data", (chunk: string) => {
  buf += chunk;
  for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
    const text = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    if (!text.trim()) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
    const parsed = SimEvent.safeParse(raw);
    if (parsed.success) onEvent(parsed.data);
    else note(`unreadable event from lockerd: ${text.slice(0, 120)}`, "error");
  }
  if (buf.length > MAX_EVENT_BYTES) {
    note("event line too long: dropped", "error");
    buf = "";
  }
});
socket.on("error", () => socket.destroy());
socket.on("close", () => void quit(1, "the sim socket closed"));
for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) process.on(sig, () => void quit(code));
// A hang-up or a closed pipe shows as write errors: stop writing and quit, never loop on them.
for (const out of [process.stdout, process.stderr]) {
  out.on("error", () => {
    outputGone = true;
    void quit(129);
  });
}
process.stdin.on("error", () => void quit(129));
process.on("uncaughtException", (e) => {
  if (quitting) process.exit(70); // the exit hook still sends the daemon SIGTERM
  restoreTerminal();
  warn(e.stack ?? String(e));
  void quit(70);
});

send({ op: "state" });

if (interactive) {
  process.stdout.write("\x1b[?1049h\x1b[?25l");
  process.stdin.setRawMode(true);
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    const r = mapInput(model.mode, chunk);
    model.mode = r.mode;
    if (r.mode.kind === "command") model.status = undefined;
    for (const a of r.actions) act(a);
    changed();
  });
  process.stdin.on("end", () => void quit(0));
  process.stdout.on("resize", () => draw(true));
  draw(true);
} else {
  // Scripted: lines in order (a `wait` delays the next); at the end, let events settle, then quit.
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (quitting) break;
    const cmd = parseLine(line);
    if (cmd) await run(cmd, line.trim());
  }
  const until = Date.now() + 10_000;
  while (!quitting && Date.now() - lastEventAt < 1000 && Date.now() < until) await sleep(100);
  await quit(0);
}
