// The data directory (0700), the device key (0600) and a pid lock so two daemons never share one
// ledger. Created on first start.
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Take `<dir>/lockerd.pid`; a stale file (its process gone) is taken over. Returns the release function. */
export function takePidLock(dir: string): () => void {
  const file = join(dir, "lockerd.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, "utf8").trim() === String(process.pid)) unlinkSync(file);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number.parseInt(readFileSync(file, "utf8"), 10);
      if (Number.isInteger(pid) && (pid === process.pid || alive(pid))) {
        throw new LockerError(ErrorCode.Busy, `data directory ${dir} is in use by lockerd pid ${pid}`, { pid });
      }
      unlinkSync(file);
    }
  }
  throw new LockerError(ErrorCode.Busy, `cannot take ${file}`);
}
