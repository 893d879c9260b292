// A pseudo-terminal pair made by socat for the serial reader tests: the reader under test opens
// `reader`, the test plays the device on `device` (plain fs writes: what the wire carries).
// `unplug()` kills socat (both ends vanish, like pulling a USB-serial reader), `replug()` makes the
// same paths again. Each pair lives in its own temporary directory; `close()` removes it.
import { spawn, type ChildProcess } from "node:child_process";
import { access, mkdtemp, open, rm, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PtyPair {
  /** The end the reader driver opens. */
  reader: string;
  /** The end the test writes the device's bytes to. */
  device: string;
  /** Write bytes as the device sends them (opens the device end on first use). */
  write(data: string | Uint8Array): Promise<void>;
  unplug(): Promise<void>;
  replug(): Promise<void>;
  close(): Promise<void>;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function startSocat(a: string, b: string): Promise<ChildProcess> {
  const child = spawn("socat", [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: "ignore" });
  const deadline = Date.now() + 5000;
  while (!((await exists(a)) && (await exists(b)))) {
    if (child.exitCode !== null) throw new Error(`socat exited with ${child.exitCode}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error("socat made no links within 5 s");
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return child;
}

async function stopSocat(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  await exited;
}

export async function makePtyPair(): Promise<PtyPair> {
  const dir = await mkdtemp(join(tmpdir(), "lockerd-reader-pty-"));
  const reader = join(dir, "reader");
  const device = join(dir, "device");
  let socat: ChildProcess | undefined = await startSocat(reader, device);
  let handle: FileHandle | undefined;
  const closeDevice = async () => {
    await handle?.close().catch(() => undefined);
    handle = undefined;
  };
  return {
    reader,
    device,
    async write(data) {
      handle ??= await open(device, "r+");
      await handle.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    },
    async unplug() {
      await closeDevice();
      if (socat) await stopSocat(socat);
      socat = undefined;
    },
    async replug() {
      socat ??= await startSocat(reader, device);
    },
    async close() {
      await closeDevice();
      if (socat) await stopSocat(socat);
      socat = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
