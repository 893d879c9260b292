// The Kerong-board emulator process (scripts/kerong-emulator.ts) for end-to-end tests: its frames
// as it received them, and its control socket (doors, faults).
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";
import { ROOT } from "./daemon.js";
import { slow } from "./slow.js";

const EMULATOR = join(ROOT, "dist/scripts/kerong-emulator.js");

export interface Emulator {
  child: ChildProcess;
  frames: { rx: string; command?: string; board?: number; lock?: number }[];
  control: (cmd: Record<string, unknown>) => Promise<unknown>;
}

export async function startEmulator(port: string, control: string): Promise<Emulator> {
  const child = spawn(process.execPath, [EMULATOR, "--port", port, "--boards", "0,1", "--control", control], { stdio: ["ignore", "pipe", "pipe"] });
  const frames: Emulator["frames"] = [];
  let buf = "";
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`emulator not ready: ${err}`)), slow(10_000));
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as { ready?: boolean; rx?: string };
        buf = buf.slice(nl + 1);
        if (line.ready) {
          clearTimeout(t);
          resolve();
        }
        if (line.rx) frames.push(line as Emulator["frames"][number]);
      }
    });
  });
  await ready;
  const controlFn = (cmd: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) => {
      const sock = connect(control);
      let out = "";
      sock.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (out.includes("\n")) {
          sock.end();
          resolve(JSON.parse(out.slice(0, out.indexOf("\n"))));
        }
      });
      sock.on("error", reject);
      sock.write(`${JSON.stringify(cmd)}\n`);
    });
  return { child, frames, control: controlFn };
}


/** Two Kerong boards on `port`: lock channels 0-15 (address 0) and 16-31 (address 1), polled every 100 ms. */
export function twoKerongBoards(port: string) {
  return { type: "kerong", port, boards: [{ address: 0, firstChannel: 0 }, { address: 1, firstChannel: 16 }], pollMs: 100 };
}

/** The emulator's (board, lock) of a compartment A01..B12 (lock channels 0..23) on twoKerongBoards. */
export function kerongLockOf(compartment: string): { board: number; lock: number } {
  const n = Number(compartment.slice(1));
  const channel = compartment.startsWith("A") ? n - 1 : 11 + n;
  return channel < 16 ? { board: 0, lock: channel + 1 } : { board: 1, lock: channel - 15 };
}
