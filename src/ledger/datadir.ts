// The data directory (0700), the device key (0600) and a kernel-held lock so two daemons never
// share one ledger. Created on first start.
import { createHash, randomBytes } from "node:crypto";
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ErrorCode, LockerError } from "../errors.js";

const KEY_BYTES = 32;

export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if ((statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new LockerError(ErrorCode.Storage, `data directory ${dir} is not usable: ${(e as Error).message}`, { dir });
  }
}

/**
 * The HMAC key for secrets at rest. Never leaves the data directory. Made only for a new bank
 * (`create`): a directory that has held one and lost its key is refused (checkDataDir).
 */
export function loadDeviceKey(dir: string, create = true): Buffer {
  const file = join(dir, "device.key");
  try {
    const key = readFileSync(file);
    if (key.length !== KEY_BYTES) throw new LockerError(ErrorCode.Storage, `${file}: expected ${KEY_BYTES} bytes, found ${key.length}`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw storage(e, file);
    if (!create) throw new LockerError(ErrorCode.Storage, `${file} is missing`, { file });
  }
  const key = randomBytes(KEY_BYTES);
  try {
    writeFileSync(file, key, { mode: 0o600, flag: "wx" });
  } catch (e) {
    throw storage(e, file);
  }
  return key;
}

/** An I/O error as a storage error (exit 73) that names the file. */
function storage(e: unknown, file: string): LockerError {
  if (e instanceof LockerError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new LockerError(ErrorCode.Storage, `${file}: ${code ? `${code}: ` : ""}${(e as Error).message}`, { file });
}

// ── identity: a data directory that has held a bank knows it ────────────────

/** `<dir>/bank.json`: written once a bank lives here; says which bank and which key. */
export const MARKER = "bank.json";
/** Ledger meta keys holding the same facts, so ledger, key and directory must agree. */
export const META_BANK = "bank.id";
export const META_KEY = "bank.keyFingerprint";
/** Ledger meta: a restore happened; the next start records system.restored with this JSON, then clears it (backup.ts). */
export const META_RESTORED = "restored.pending";

export interface BankIdentity {
  bank: string;
  keyFingerprint: string;
  createdAt: number;
}

/** A short fingerprint of the device key (never the key): sha256, first 16 bytes, hex. */
export function keyFingerprint(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 32);
}

const WAY_OUT = "restore ledger.db and device.key from a backup, or start a new, empty bank deliberately with `lockerd --init` (the old files are kept aside)";

function refuse(dir: string, what: string, identity?: BankIdentity): LockerError {
  const held = identity ? `bank ${identity.bank}` : "a bank";
  return new LockerError(ErrorCode.Storage, `${dir} has held ${held}, but ${what}: ${WAY_OUT}`, { dir });
}

function size(file: string): number | null {
  try {
    return statSync(file).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw storage(e, file);
  }
}

export function readMarker(dir: string): BankIdentity | undefined {
  const file = join(dir, MARKER);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw storage(e, file);
  }
  try {
    const m = JSON.parse(text) as Partial<BankIdentity>;
    if (typeof m.bank === "string" && typeof m.keyFingerprint === "string") return { bank: m.bank, keyFingerprint: m.keyFingerprint, createdAt: Number(m.createdAt ?? 0) };
  } catch {
    /* fall through */
  }
  throw new LockerError(ErrorCode.Storage, `${file} is damaged: ${WAY_OUT}`, { file });
}

export function writeMarker(dir: string, identity: BankIdentity): void {
  const file = join(dir, MARKER);
  try {
    writeFileSync(`${file}.tmp`, `${JSON.stringify(identity)}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  } catch (e) {
    throw storage(e, file);
  }
}

/**
 * Before the ledger is opened: is this a new bank, or one that has lived here, complete? A
 * directory that has held a bank (its marker, its key or a non-empty ledger is there) must still
 * have both its ledger and its key, else start is refused (exit 73) saying the way out: never a
 * silent fresh start that loses the stored parcels or makes every code dead.
 */
export function checkDataDir(dir: string): { fresh: boolean; identity: BankIdentity | undefined } {
  const identity = readMarker(dir);
  const ledger = size(join(dir, "ledger.db"));
  const key = size(join(dir, "device.key"));
  const held = identity !== undefined || key !== null || (ledger !== null && ledger > 0);
  if (!held) return { fresh: true, identity: undefined };
  if (ledger === null) throw refuse(dir, "ledger.db is missing", identity);
  if (ledger === 0) throw refuse(dir, "ledger.db is empty (0 bytes)", identity);
  if (key === null) throw refuse(dir, "device.key is missing", identity);
  return { fresh: false, identity };
}

/**
 * `--init`: a new, empty bank in this directory, deliberately. What was there (ledger and its WAL,
 * key, marker) is moved into `replaced-<time>/`, never deleted. Returns that folder, if any.
 */
export function setAside(dir: string, now: number): string | undefined {
  const files = ["ledger.db", "ledger.db-wal", "ledger.db-shm", "device.key", MARKER].filter((f) => existsSync(join(dir, f)));
  if (!files.length) return undefined;
  const aside = join(dir, `replaced-${new Date(now).toISOString().replace(/[:.]/g, "-")}`);
  try {
    mkdirSync(aside, { mode: 0o700 });
    for (const f of files) renameSync(join(dir, f), join(aside, f));
  } catch (e) {
    throw storage(e, aside);
  }
  return aside;
}

/** The ledger's own files 0600 whatever the umask they were created under. */
export function tightenLedgerFiles(dir: string): void {
  for (const f of ["ledger.db", "ledger.db-wal", "ledger.db-shm"]) {
    try {
      chmodSync(join(dir, f), 0o600);
    } catch {
      /* not there (yet) */
    }
  }
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
