// Backups of a bank, and putting one back.
//
// A backup is ONE file, an ordinary SQLite database: the ledger copied online with SQLite's backup
// API (better-sqlite3 `db.backup`, page by page between the bank's own transactions, so the copy is
// one consistent moment while the bank keeps serving), plus a table `lockerd_backup` holding the
// device key and what the copy is (bank, key fingerprint, head seq, when). The key belongs in it:
// every PIN, badge and code in the ledger is an HMAC under that key, so a ledger without its key
// opens no door. The file is therefore as secret as the data directory: mode 0600.
//
//   lockerctl backup FILE ─▶ daemon: db.backup(tmp in data dir) ─▶ add lockerd_backup ─▶ check
//                          ─▶ streamed to lockerctl in chunks ─▶ FILE.partial (0600) ─▶ fsync, rename
//   lockerd restore FILE --data DIR ─▶ integrity_check, key ↔ ledger fingerprint, whole chain
//                          ─▶ what DIR held set aside (replaced-<time>/) ─▶ ledger.db, device.key, bank.json
//
// The daemon writes the copy (it owns the ledger) but never to a path the client names: the bytes
// travel over the admin socket and lockerctl writes FILE as the technician's own user.
//
// After a restore the ledger continues from the backup's last event: the server may hold later
// events of the lost timeline under the same seqs. The restored bank therefore starts as a new
// `instance` and its first event is `system.restored` {fromSeq, backupAt, previousInstance} (see
// the contract, docs/asyncapi.yaml "After a restore").
import Database from "better-sqlite3";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, statfsSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ErrorCode, LockerError } from "../errors.js";
import { type BankIdentity, ensureDataDir, keyFingerprint, META_BANK, META_KEY, META_RESTORED, setAside, writeMarker } from "./datadir.js";
import { Ledger } from "./ledger.js";

export { META_RESTORED };

export const BACKUP_TABLE = "lockerd_backup";
const INSTANCE_KEY = "sync.instance";

export interface BackupInfo {
  bank: string;
  keyFingerprint: string;
  headSeq: number;
  events: number;
  createdAt: number;
  bytes: number;
}

/**
 * Write a consistent copy of the open ledger with its key to `tmp` (a new file in the data
 * directory); the caller streams it and deletes it. Refused when the disk has not room for it.
 */
export async function writeBackup(ledger: Ledger, deviceKey: Buffer, tmp: string, now: number): Promise<BackupInfo> {
  const size = ledger.db.pragma("page_count", { simple: true }) as number;
  const pageSize = ledger.db.pragma("page_size", { simple: true }) as number;
  const need = size * pageSize * 1.1 + 16 * 2 ** 20;
  const fs = statfsSync(join(tmp, ".."));
  if (fs.bavail * fs.bsize < need) {
    throw new LockerError(ErrorCode.Storage, `not enough free space for a backup next to the ledger (need ${Math.round(need / 2 ** 20)} MB)`);
  }
  try {
    // The copy holds the key: 0600 from its first byte, whatever the umask.
    writeFileSync(tmp, "", { mode: 0o600, flag: "wx" });
    chmodSync(tmp, 0o600);
    await ledger.db.backup(tmp);
    const copy = new Database(tmp);
    try {
      copy.pragma("journal_mode = DELETE");
      const meta = (key: string) => (copy.prepare("SELECT value FROM meta WHERE key = ?").get(key) as { value: string } | undefined)?.value;
      const head = copy.prepare("SELECT max(seq) AS seq, count(*) AS n FROM events").get() as { seq: number | null; n: number };
      const info: Omit<BackupInfo, "bytes"> = {
        bank: meta(META_BANK) ?? "unknown",
        keyFingerprint: keyFingerprint(deviceKey),
        headSeq: head.seq ?? 0,
        events: head.n,
        createdAt: now,
      };
      copy.exec(`CREATE TABLE ${BACKUP_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT`);
      const put = copy.prepare(`INSERT INTO ${BACKUP_TABLE} (key, value) VALUES (?, ?)`);
      copy.transaction(() => {
        put.run("deviceKey", deviceKey.toString("base64"));
        for (const [k, v] of Object.entries(info)) put.run(k, String(v));
      })();
      const check = copy.pragma("quick_check", { simple: true }) as string;
      if (check !== "ok") throw new LockerError(ErrorCode.Storage, `the backup copy fails its check: ${check}`);
      copy.close();
      return { ...info, bytes: statSync(tmp).size };
    } finally {
      if (copy.open) copy.close();
    }
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not written */
    }
    throw e;
  }
}

/** A temporary file name for a backup in the data directory. */
export function backupTemp(dataDir: string): string {
  return join(dataDir, `backup-${randomBytes(6).toString("hex")}.tmp`);
}

export interface RestoreResult extends BackupInfo {
  dataDir: string;
  /** Where what the directory held before was moved, if it held anything. */
  setAsideIn: string | undefined;
  parcelsStored: number;
}

/**
 * Put a backup back into `dataDir` (lockerd must not be running there: the caller holds the data
 * directory's lock). Verifies the file (SQLite integrity, the backup table, key ↔ ledger
 * fingerprint, the whole custody chain) BEFORE anything in the directory is touched; what the
 * directory held is moved aside, never deleted.
 */
export function restoreBackup(file: string, dataDir: string, now: number): RestoreResult {
  if (!existsSync(file)) throw new LockerError(ErrorCode.BadInput, `${file}: no such file`);
  ensureDataDir(dataDir);
  const staging = join(dataDir, `restore-${randomBytes(6).toString("hex")}.db`);
  writeFileSync(staging, readFileSync(file), { mode: 0o600, flag: "wx" });
  try {
    const check = Ledger.check(staging, true);
    if (check !== "ok") throw new LockerError(ErrorCode.BadInput, `${file} is not an intact SQLite file: ${check}`);
    const db = new Database(staging);
    let info: BackupInfo;
    let key: Buffer;
    let previousInstance: string | null;
    try {
      const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(BACKUP_TABLE);
      if (!hasTable) throw new LockerError(ErrorCode.BadInput, `${file} is not a lockerd backup (no ${BACKUP_TABLE} table): make one with \`lockerctl backup FILE\``);
      const rows = new Map((db.prepare(`SELECT key, value FROM ${BACKUP_TABLE}`).all() as { key: string; value: string }[]).map((r) => [r.key, r.value]));
      key = Buffer.from(rows.get("deviceKey") ?? "", "base64");
      if (key.length !== 32) throw new LockerError(ErrorCode.BadInput, `${file}: the device key in the backup is missing or damaged`);
      const meta = (k: string) => (db.prepare("SELECT value FROM meta WHERE key = ?").get(k) as { value: string } | undefined)?.value;
      const fingerprint = keyFingerprint(key);
      const onRecord = meta(META_KEY);
      if (onRecord !== undefined && onRecord !== fingerprint) {
        throw new LockerError(ErrorCode.BadInput, `${file}: its device key (fingerprint ${fingerprint}) does not belong to its ledger (${onRecord}): the file was altered`);
      }
      previousInstance = meta(INSTANCE_KEY) ?? null;
      info = {
        bank: meta(META_BANK) ?? rows.get("bank") ?? "unknown",
        keyFingerprint: fingerprint,
        headSeq: Number(rows.get("headSeq") ?? 0),
        events: Number(rows.get("events") ?? 0),
        createdAt: Number(rows.get("createdAt") ?? 0),
        bytes: statSync(file).size,
      };
      // The key leaves the ledger file; the restored bank is a new instance that says so at start.
      db.transaction(() => {
        db.exec(`DROP TABLE ${BACKUP_TABLE}`);
        db.prepare("DELETE FROM meta WHERE key = ?").run(INSTANCE_KEY);
        db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(
          META_RESTORED,
          JSON.stringify({ fromSeq: info.headSeq, backupAt: info.createdAt, restoredAt: now, previousInstance }),
        );
      })();
      db.exec("VACUUM");
    } finally {
      db.close();
    }
    // The whole chain, through the ledger's own code, on the staged copy.
    const ledger = new Ledger(staging, { now: () => now, synchronous: "FULL" });
    let parcelsStored: number;
    try {
      const chain = ledger.verify();
      if (!chain.ok) throw new LockerError(ErrorCode.ChainBroken, `${file}: the custody chain is broken at seq ${chain.brokenAt} (${chain.reason}): not restored`);
      if (chain.checked !== info.events) throw new LockerError(ErrorCode.ChainBroken, `${file}: the backup says ${info.events} events, the chain has ${chain.checked}`);
      parcelsStored = (ledger.db.prepare("SELECT count(*) AS n FROM parcels WHERE status IN ('stored', 'awaiting_recipient')").get() as { n: number }).n;
    } finally {
      ledger.close();
    }
    const aside = setAside(dataDir, now);
    writeFileSync(join(dataDir, "device.key"), key, { mode: 0o600, flag: "wx" });
    // A WAL left by the check's connection goes along with its database (SQLite replays it).
    for (const f of ["-wal", "-shm"]) if (existsSync(`${staging}${f}`)) renameSync(`${staging}${f}`, join(dataDir, `ledger.db${f}`));
    renameSync(staging, join(dataDir, "ledger.db"));
    const identity: BankIdentity = { bank: info.bank, keyFingerprint: info.keyFingerprint, createdAt: now };
    writeMarker(dataDir, identity);
    return { ...info, dataDir, setAsideIn: aside, parcelsStored };
  } finally {
    for (const f of [staging, `${staging}-wal`, `${staging}-shm`]) {
      try {
        unlinkSync(f);
      } catch {
        /* moved into place, or never made */
      }
    }
  }
}

