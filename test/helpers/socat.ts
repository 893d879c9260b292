// A pseudo-terminal pair made by socat, standing in for a USB-RS485 adapter and the bus behind it:
// lockerd opens `host`, an emulator opens `device`. Each pair lives in its own temporary directory.
// `unplug()` kills socat (both ends vanish, like pulling the adapter), `replug()` makes the same
// paths again. `close()` kills socat and removes the directory.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SerialPort } from "serialport";

export interface PtyPair {
  dir: string;
  /** The end lockerd (the bus under test) opens. */
  host: string;
  /** The end the emulated boards open. */
  device: string;
  unplug(): Promise<void>;
  replug(): Promise<void>;
  close(): Promise<void>;
}

/** True when socat can be run (tests over a pty skip otherwise). */
export function hasSocat(): boolean {
  return spawnSync("socat", ["-V"], { stdio: "ignore" }).status === 0;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function startSocat(host: string, device: string, timeoutMs: number): Promise<ChildProcess> {
  const child = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.on("error", (e) => (stderr += e.message));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const deadline = Date.now() + timeoutMs;
  while (!((await exists(host)) && (await exists(device)))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`socat exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`socat links not there after ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return child;
}

async function kill(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  await exited;
}

export async function makePtyPair(opts: { timeoutMs?: number } = {}): Promise<PtyPair> {
  const dir = await mkdtemp(join(tmpdir(), "lockerd-pty-"));
  const host = join(dir, "host");
  const device = join(dir, "device");
  const timeoutMs = opts.timeoutMs ?? 5000;
  let child: ChildProcess | null = await startSocat(host, device, timeoutMs);
  return {
    dir,
    host,
    device,
    async unplug() {
      await kill(child);
      child = null;
      await rm(host, { force: true });
      await rm(device, { force: true });
    },
    async replug() {
      if (child) return;
      child = await startSocat(host, device, timeoutMs);
    },
    async close() {
      await kill(child);
      child = null;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Open a serial path (one end of the pair) and wait until it is open. */
export function openSerial(path: string, baudRate: number): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    port.open((err) => (err ? reject(err) : resolve(port)));
  });
}

/** Close a port; never throws (it may already be gone). */
export function closeSerial(port: SerialPort): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) return resolve();
    port.close(() => resolve());
  });
}
