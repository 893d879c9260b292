// A pseudo-terminal pair made by socat, standing in for a USB-RS485 adapter and the bus behind it:
// lockerd opens `host`, an emulator opens `device`. Each pair lives in its own temporary directory.
// `unplug()` kills socat (both ends vanish, like pulling the adapter), `replug()` makes the same
// paths again. `close()` kills socat and removes the directory. `yank()` pulls the adapter at a
// chosen instant: the next write on either end meets the dead line (EIO), as a write racing a real
// unplug does.
//
// A port opened with `openSerial()` (the far end: the emulated boards, a keypad) takes the line
// vanishing under a write (EIO, ENXIO, EBADF): that is what `unplug()` does, not a test failure;
// `lineErrors(port)` lists them. Any other error still surfaces as an uncaught exception.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
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
  /**
   * Pull the adapter now, synchronously: socat is killed (SIGKILL) and this returns once it has
   * exited, so both pty ends are dead before the event loop runs again and no port has seen the
   * hangup yet: a write issued right after fails with EIO. `unplug()` after it reaps socat and
   * removes the links; `replug()` then makes the pair again.
   */
  yank(): void;
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

/** Blocks until process `pid` has exited (a zombie: its files, the pty ends, are closed) or is gone. */
function waitExitedSync(pid: number, timeoutMs: number): void {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let state: string | undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    } catch {
      return; // reaped already
    }
    if (state === "Z" || state === "X") return;
    if (Date.now() > deadline) throw new Error(`socat (pid ${pid}) still running ${timeoutMs} ms after SIGKILL (state ${state})`);
    Atomics.wait(nap, 0, 0, 1);
  }
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
    yank() {
      if (!child?.pid || child.exitCode !== null || child.signalCode !== null) throw new Error("yank(): socat is not running");
      child.kill("SIGKILL");
      waitExitedSync(child.pid, timeoutMs);
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

/** What a write on a pty end whose pair is gone fails with (a USB adapter pulled: ENXIO, EBADF). */
const LINE_GONE = new Set(["EIO", "ENXIO", "EBADF"]);
const lineErrorsOf = new WeakMap<SerialPort, Error[]>();

/** The line-vanished errors of a port `openSerial()` opened, oldest first. */
export function lineErrors(port: SerialPort): readonly Error[] {
  return lineErrorsOf.get(port) ?? [];
}

/**
 * Open a serial path (one end of the pair) and wait until it is open. A write failing because the
 * line vanished (`unplug()`, `yank()`) is recorded (`lineErrors`), not thrown: whoever writes on
 * this end (an emulator answering a poll read just before the unplug) may meet the dead line.
 */
export function openSerial(path: string, baudRate: number): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    const errors: Error[] = [];
    lineErrorsOf.set(port, errors);
    port.on("error", (e: NodeJS.ErrnoException) => {
      if (!LINE_GONE.has(e.code ?? "")) throw e;
      errors.push(e);
    });
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
