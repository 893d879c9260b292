#!/usr/bin/env node
// An emulated fingerprint module (R30x / R503 / AS608 protocol) to try lockerd's fingerprint reader
// by hand: makes a socat pseudo-terminal pair, serves the module on one end and prints the other
// end's path, the `port` for lockerd's reader config. A person plays the finger on stdin.
//
//   node dist/scripts/fingerprint-emulator.js [--library 200] [--password N] [--address N] [--verbose]
//   node dist/scripts/fingerprint-emulator.js --port /dev/ttyUSB1      (serve an existing serial line)
//
// stdin, one command a line (`help` lists them): place ID [messy|few-features] · lift · list ·
// score ID N · store SLOT ID · fault none|silent|checksum|garbage|wrong-address · password N · quit
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { SerialPort } from "serialport";
import { FINGERPRINT_FAULTS, FingerprintEmulator, type FingerprintFault } from "../src/drivers/readers/fingerprint/emulator.js";

export const USAGE = `usage: fingerprint-emulator [--port PATH] [--baud 57600] [--library 200] [--password N] [--address N] [--verbose]`;

export const HELP = `commands:
  place ID [messy|few-features]   a finger on the sensor (any name; a new name is an unknown finger)
  lift                            take it off
  list                            the library: slot → finger
  score ID N                      the match score this finger gets (test the reader's threshold)
  store SLOT ID                   a template in SLOT without enrolling
  fault none|silent|checksum|garbage|wrong-address   (checksum: the next answer only)
  password N                      the module's handshake password (as SetPwd would set it)
  state                           everything as JSON
  quit`;

export interface FingerprintCli {
  port: string | undefined;
  baudRate: number;
  librarySize: number;
  password: number;
  address: number;
  verbose: boolean;
}

function uint(name: string, v: string | undefined, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`--${name} must be an integer 0..${max}`);
  return n;
}

/** The command line, checked. Throws an Error with a one-line reason. */
export function parseCli(argv: readonly string[]): FingerprintCli {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: "string" },
      baud: { type: "string" },
      library: { type: "string" },
      password: { type: "string" },
      address: { type: "string" },
      verbose: { type: "boolean", default: false },
    },
    strict: true,
  });
  const baudRate = uint("baud", values.baud, 57_600, 115_200);
  if (baudRate % 9600 !== 0 || baudRate === 0) throw new Error("--baud must be 9600 × N");
  const librarySize = uint("library", values.library, 200, 1024);
  if (librarySize < 1) throw new Error("--library must be 1..1024");
  return {
    port: values.port,
    baudRate,
    librarySize,
    password: uint("password", values.password, 0, 0xffff_ffff),
    address: uint("address", values.address, 0xffff_ffff, 0xffff_ffff),
    verbose: values.verbose,
  };
}

/** One stdin command applied to the emulator; the answer to print. Never throws. */
export function applyCommand(emu: FingerprintEmulator, line: string): string {
  const [cmd, ...args] = line.trim().split(/\s+/);
  try {
    switch (cmd) {
      case "place": {
        const [id, quality = "good"] = args;
        if (!id) return "place ID [messy|few-features]";
        if (quality !== "good" && quality !== "messy" && quality !== "few-features") return "image quality: good, messy or few-features";
        emu.place(id, quality);
        return `finger ${id} on the sensor${quality === "good" ? "" : ` (${quality} image)`}`;
      }
      case "lift":
        emu.lift();
        return "no finger on the sensor";
      case "list": {
        const t = emu.templates();
        return t.size ? [...t].map(([slot, f]) => `${slot}: ${f}`).join("\n") : "library empty";
      }
      case "score": {
        const [id, n] = args;
        if (!id || n === undefined) return "score ID N";
        emu.setScore(id, Number(n));
        return `finger ${id} scores ${n}`;
      }
      case "store": {
        const [slot, id] = args;
        if (slot === undefined || !id) return "store SLOT ID";
        emu.store(Number(slot), id);
        return `slot ${slot}: ${id}`;
      }
      case "fault": {
        const f = args[0] as FingerprintFault | undefined;
        if (!f || !FINGERPRINT_FAULTS.includes(f)) return `fault ${FINGERPRINT_FAULTS.join("|")}`;
        emu.setFault(f);
        return `fault: ${f}`;
      }
      case "password": {
        const n = Number(args[0]);
        if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) return "password N (0..4294967295)";
        emu.setPassword(n);
        return `password set to ${n}`;
      }
      case "state":
        return JSON.stringify(emu.state());
      case "help":
      case undefined:
      case "":
        return HELP;
      default:
        return `unknown command ${cmd}; \`help\` lists them`;
    }
  } catch (e) {
    return (e as Error).message;
  }
}

/** A socat pty pair in a fresh temporary directory: lockerd opens `host`, the emulator `device`. */
async function ptyPair(): Promise<{ dir: string; host: string; device: string; socat: ChildProcess }> {
  const dir = mkdtempSync(join(tmpdir(), "lockerd-fingerprint-"));
  const host = join(dir, "host");
  const device = join(dir, "device");
  const socat = spawn("socat", [`pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], { stdio: ["ignore", "ignore", "inherit"] });
  const failed = new Promise<never>((_, reject) => {
    socat.once("error", (e) => reject(new Error(`cannot run socat (${e.message}): apt-get install socat`)));
    socat.once("exit", (code) => reject(new Error(`socat exited ${code}`)));
  });
  failed.catch(() => undefined);
  const deadline = Date.now() + 5000;
  while (!(existsSync(host) && existsSync(device))) {
    if (Date.now() > deadline) throw new Error("socat made no pseudo-terminals within 5 s");
    await Promise.race([new Promise((r) => setTimeout(r, 20)), failed]);
  }
  return { dir, host, device, socat };
}

function openPort(path: string, baudRate: number): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const p = new SerialPort({ path, baudRate, autoOpen: false });
    p.open((err) => (err ? reject(err) : resolve(p)));
  });
}

async function main(): Promise<void> {
  let cli: FingerprintCli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const emu = new FingerprintEmulator({ librarySize: cli.librarySize, password: cli.password, address: cli.address });
  if (cli.verbose) emu.on("rx", (r) => process.stdout.write(`rx ${JSON.stringify(r)}\n`));
  const pair = cli.port ? undefined : await ptyPair();
  const device = cli.port ?? pair!.device;
  let port: SerialPort;
  try {
    port = await openPort(device, cli.baudRate);
  } catch (e) {
    process.stderr.write(`cannot open ${device}: ${(e as Error).message}\n`);
    pair?.socat.kill();
    process.exit(1);
  }
  emu.attach(port);
  port.on("error", (e) => process.stderr.write(`serial error: ${e.message}\n`));

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    port.close(() => {
      pair?.socat.kill();
      if (pair) rmSync(pair.dir, { recursive: true, force: true });
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  const config = { type: "fingerprint", port: pair ? pair.host : "<this line's other end>", baudRate: cli.baudRate };
  process.stdout.write(
    `emulated fingerprint module on ${device}, library ${cli.librarySize}${cli.password ? ", password set" : ""}\n` +
      `lockerd reader config: ${JSON.stringify(config)}${cli.password ? ` (add "password": ${cli.password})` : ""}\n` +
      "type `help` for the commands\n",
  );
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line.trim() === "quit") return stop();
    process.stdout.write(`${applyCommand(emu, line)}\n`);
  });
  rl.on("close", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
