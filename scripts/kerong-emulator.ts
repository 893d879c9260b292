#!/usr/bin/env node
// Emulated RS485 lock-control boards on a serial path, for end-to-end tests of the compiled daemon
// (against one end of a socat pseudo-terminal pair) or for trying a bank without boards.
//
//   node dist/scripts/kerong-emulator.js --port /tmp/x/b --boards 0,1 [--control /tmp/x/ctl.sock]
//
// stdout: one JSON object per line: {"ready":true,...} once serving, then every frame received
// ({"rx":"0201310335","board":0,"command":"unlock","lock":1}), discarded bytes and port events.
// The control socket takes JSON lines and answers one line each (see applyControl):
//   {"cmd":"door","board":0,"lock":1,"state":"closed"}   {"cmd":"item","board":0,"lock":3,"present":true}
//   {"cmd":"fault","board":1,"mode":"silent"}             {"cmd":"raw","hex":"ff02"}   {"cmd":"state"}
// If the port vanishes it is reopened every 200 ms. SIGTERM / SIGINT end it cleanly.
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { SerialPort } from "serialport";
import { Cu8aEmulator, KerongEmulator, applyControl, type Emulator } from "../src/drivers/rs485/emulator.js";

export const USAGE = `usage: kerong-emulator --port PATH [--boards 0,1] [--protocol kerong|cu8a] [--baud N]
       [--control SOCKET] [--lock-bit-open 0|1] [--ir-bit-present 0|1]
       [--status-bytes N] [--status-order high-first|low-first]`;

export interface EmulatorCli {
  port: string;
  protocol: "kerong" | "cu8a";
  boards: number[];
  baudRate: number;
  control: string | undefined;
  lockBitOpen: 0 | 1;
  irBitPresent: 0 | 1;
  statusBytes: number;
  statusOrder: "high-first" | "low-first";
}

function bitArg(name: string, v: string | undefined, dflt: 0 | 1): 0 | 1 {
  if (v === undefined) return dflt;
  if (v !== "0" && v !== "1") throw new Error(`--${name} must be 0 or 1`);
  return v === "1" ? 1 : 0;
}

/** The command line, checked. Throws an Error with a one-line reason. */
export function parseCli(argv: readonly string[]): EmulatorCli {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: "string" },
      boards: { type: "string", default: "0" },
      protocol: { type: "string", default: "kerong" },
      baud: { type: "string" },
      control: { type: "string" },
      "lock-bit-open": { type: "string" },
      "ir-bit-present": { type: "string" },
      "status-bytes": { type: "string", default: "3" },
      "status-order": { type: "string", default: "high-first" },
    },
    strict: true,
  });
  if (!values.port) throw new Error("--port is required");
  const protocol = values.protocol;
  if (protocol !== "kerong" && protocol !== "cu8a") throw new Error("--protocol must be kerong or cu8a");
  const maxBoard = protocol === "kerong" ? 15 : 255;
  const boards = values.boards.split(",").map((s) => Number(s.trim()));
  if (boards.some((b) => !Number.isInteger(b) || b < 0 || b > maxBoard)) throw new Error(`--boards must be integers 0..${maxBoard}, comma separated`);
  const baudRate = Number(values.baud ?? (protocol === "kerong" ? 19200 : 9600));
  if (!Number.isInteger(baudRate) || baudRate <= 0) throw new Error("--baud must be a positive integer");
  const statusBytes = Number(values["status-bytes"]);
  if (!Number.isInteger(statusBytes) || statusBytes < 1 || statusBytes > 8) throw new Error("--status-bytes must be 1..8");
  const statusOrder = values["status-order"];
  if (statusOrder !== "high-first" && statusOrder !== "low-first") throw new Error("--status-order must be high-first or low-first");
  return {
    port: values.port,
    protocol,
    boards,
    baudRate,
    control: values.control,
    lockBitOpen: bitArg("lock-bit-open", values["lock-bit-open"], 0),
    irBitPresent: bitArg("ir-bit-present", values["ir-bit-present"], 1),
    statusBytes,
    statusOrder,
  };
}

export function createEmulator(cli: EmulatorCli): Emulator {
  return cli.protocol === "kerong"
    ? new KerongEmulator({ boards: cli.boards, lockBitOpen: cli.lockBitOpen, irBitPresent: cli.irBitPresent })
    : new Cu8aEmulator({ boards: cli.boards, lockBitOpen: cli.lockBitOpen, statusBytes: cli.statusBytes, order: cli.statusOrder });
}

const out = (obj: object) => process.stdout.write(`${JSON.stringify(obj)}\n`);

function serveControl(emu: Emulator, path: string): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    sock.on("error", () => sock.destroy());
    createInterface({ input: sock }).on("line", (line) => {
      if (line.trim()) sock.write(`${JSON.stringify(applyControl(emu, line))}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}

async function main(): Promise<void> {
  let cli: EmulatorCli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  const emu = createEmulator(cli);
  emu.on("rx", out);
  let stopping = false;
  let port: SerialPort | null = null;
  let detach = () => {};

  const open = () =>
    new Promise<void>((resolve) => {
      const p = new SerialPort({ path: cli.port, baudRate: cli.baudRate, autoOpen: false });
      p.open((err) => {
        if (err) {
          setTimeout(() => void open().then(resolve), 200);
          return;
        }
        port = p;
        detach = emu.attach(p);
        p.on("error", (e) => process.stderr.write(`serial error: ${e.message}\n`));
        p.on("close", (e?: Error | null) => {
          detach();
          port = null;
          if (stopping) return;
          out({ event: "port-closed", reason: e?.message ?? "closed" });
          void open().then(() => out({ event: "port-open" }));
        });
        resolve();
      });
    });

  await open();
  const server = cli.control ? await serveControl(emu, cli.control) : null;
  out({ ready: true, port: cli.port, protocol: cli.protocol, boards: cli.boards, control: cli.control ?? null });

  const stop = () => {
    stopping = true;
    server?.close();
    if (cli.control) rmSync(cli.control, { force: true });
    const p: SerialPort | null = port;
    if (p) p.close(() => process.exit(0));
    else process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
