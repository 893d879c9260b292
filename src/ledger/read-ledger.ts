// The ledger of a data directory as a Ledger that is only read (lockerctl while lockerd is not
// running): opened by openLedgerReadOnly (readonly.ts: nothing written or created beside it), with
// what a technician needs to hear when it cannot be read: missing, permission, a newer schema,
// damaged. A WAL without its -shm (rare) is read from a private copy: SQLite would create the -shm.
// A schema older than this build's is migrated in an in-memory image; the file stays as it is.
import Database from "better-sqlite3";
import { accessSync, constants, copyFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ledger } from "./ledger.js";
import { migrate, MIGRATIONS } from "./migrations.js";
import { openLedgerReadOnly } from "./readonly.js";

export class LedgerUnreadable extends Error {
  constructor(
    readonly kind: "missing" | "permission" | "newer" | "damaged",
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ReadOnlyLedger {
  ledger: Ledger;
  file: string;
  /** The schema the file is at (user_version); below MIGRATIONS.length the ledger is a migrated in-memory image. */
  schema: number;
  close(): void;
}

/** `<dataDir>/ledger.db`, to read; throws LedgerUnreadable saying what is wrong and where. */
export function readLedger(dataDir: string, now: () => number): ReadOnlyLedger {
  const file = join(dataDir, "ledger.db");
  const size = sizeOf(file);
  if (size === null) throw new LedgerUnreadable("missing", file, sizeOf(dataDir) === null ? `no data directory ${dataDir} (no ledger ${file})` : `no ledger at ${file}`);
  if (size === 0) throw new LedgerUnreadable("damaged", file, `${file} is empty (0 bytes)`);
  let db: Database.Database | undefined;
  try {
    db = sizeOf(`${file}-wal`) !== null && sizeOf(`${file}-shm`) === null ? viaCopy(file) : openLedgerReadOnly(file);
    const schema = db.pragma("user_version", { simple: true }) as number;
    if (schema === 0) throw new LedgerUnreadable("damaged", file, `${file} is not a lockerd ledger (no schema)`);
    if (schema > MIGRATIONS.length) {
      throw new LedgerUnreadable("newer", file, `${file} has ledger schema ${schema}, newer than this lockerctl knows (${MIGRATIONS.length}): use the lockerctl installed with the lockerd that wrote it`);
    }
    if (schema < MIGRATIONS.length) {
      // lockerd migrates it at its next start; here only an in-memory image is.
      const bytes = db.serialize();
      db.close();
      db = image(bytes);
      migrate(db);
    }
    const ledger = new Ledger(db, { now });
    return { ledger, file, schema, close: () => ledger.close() };
  } catch (e) {
    if (db?.open) db.close();
    throw unreadable(e, file);
  }
}

/** Size, or null when not there; EACCES on it or its directory is thrown (permission). */
function sizeOf(path: string): number | null {
  try {
    return statSync(path).size;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw unreadable(e, path);
  }
}

/** A writable in-memory database from a file's bytes (an image cannot be in WAL mode: header bytes 18-19). */
function image(bytes: Buffer): Database.Database {
  bytes[18] = 1;
  bytes[19] = 1;
  return new Database(bytes);
}

function viaCopy(file: string): Database.Database {
  const dir = mkdtempSync(join(tmpdir(), "lockerctl-"));
  try {
    copyFileSync(file, join(dir, "ledger.db"));
    copyFileSync(`${file}-wal`, join(dir, "ledger.db-wal"));
    const db = new Database(join(dir, "ledger.db"), { readonly: true, fileMustExist: true });
    try {
      return image(db.serialize());
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function unreadable(e: unknown, file: string): LedgerUnreadable {
  if (e instanceof LedgerUnreadable) return e;
  const code = String((e as { code?: unknown }).code ?? "");
  const message = (e as Error).message;
  if (code === "EACCES" || code === "EPERM" || (code === "SQLITE_CANTOPEN" && !readable(file))) {
    return new LedgerUnreadable("permission", file, `cannot read ${file}: permission denied`);
  }
  if (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT")) return new LedgerUnreadable("damaged", file, `${file} is damaged: ${message}`);
  return new LedgerUnreadable("damaged", file, `cannot read ${file}: ${code ? `${code}: ` : ""}${message}`);
}
