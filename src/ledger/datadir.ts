// The data directory (0700), the device key (0600) and a kernel-held lock so two daemons never
// share one ledger. Created on first start.
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, realpathSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ErrorCode, LockerError } from "../errors.js";

const KEY_BYTES = 32;

export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    throw new LockerError(ErrorCode.Storage, `data directory ${dir}: ${(e as Error).message}`, { dir });
  }
}

/** The HMAC key for secrets at rest. Never leaves the data directory. */
export function loadDeviceKey(dir: string): Buffer {
  const file = join(dir, "device.key");
  try {
    const key = readFileSync(file);
    if (key.length !== KEY_BYTES) throw new LockerError(ErrorCode.Storage, `${file}: expected ${KEY_BYTES} bytes, found ${key.length}`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const key = randomBytes(KEY_BYTES);
  writeFileSync(file, key, { mode: 0o600, flag: "wx" });
  return key;
}

/**
 * Hold the data directory for this process: the kernel's lock, not a PID check. The lock is a
 * listening socket in Linux's abstract namespace named after the directory's real path: the kernel
 * frees it the moment the process dies (SIGKILL, power cut), so no stale file can keep the bank
 * down, and a reused PID means nothing (a PID file only said "some process with this number
 * lives"). It is flock(2)'s semantics without a native module (nothing to cross-build for arm64).
 * `<dir>/lockerd.pid` is still written, for people and for the "in use by" message.
 * Returns the release function; a live holder → LockerError busy (exit 75).
 */
export async function takeDataDirLock(dir: string): Promise<() => void> {
  const name = `\0lockerd-datadir-${createHash("sha256").update(realpathSync(dir)).digest("hex").slice(0, 32)}`;
  const server = createServer();
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EADDRINUSE") return reject(new LockerError(ErrorCode.Storage, `cannot lock data directory ${dir}: ${e.message}`, { dir }));
      reject(new LockerError(ErrorCode.Busy, `data directory ${dir} is in use by ${holder(dir)}`, { dir }));
    });
    server.listen(name, () => resolve());
  });
  // Nobody connects to it; should someone, they are closed at once.
  server.on("connection", (c) => c.destroy());
  const file = join(dir, "lockerd.pid");
  try {
    writeFileSync(file, `${process.pid}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  } catch {
    /* informational only */
  }
  return () => {
    try {
      if (readFileSync(file, "utf8").trim() === String(process.pid)) unlinkSync(file);
    } catch {
      /* already gone */
    }
    server.close();
  };
}

function holder(dir: string): string {
  try {
    const pid = Number.parseInt(readFileSync(join(dir, "lockerd.pid"), "utf8"), 10);
    if (Number.isInteger(pid)) return `lockerd pid ${pid}`;
  } catch {
    /* no file: a lockerd that could not write it */
  }
  return "another lockerd";
}
