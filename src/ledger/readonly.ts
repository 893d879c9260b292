// A ledger opened to read only (`lockerd --check-config --data`): never migrated, never written,
// and no file created in the data directory, whether a lockerd is running on it or not.
//
// With a running lockerd (its -wal / -shm are there) the connection is a read-only one that takes
// part in WAL locking, so it sees every committed transaction. Without one, SQLite would create the
// -wal and -shm files even to read (owned by whoever runs the check, which could lock the daemon's
// user out of its own ledger): the file is read into memory instead, marked as a rollback-journal
// database (header bytes 18-19: an in-memory image cannot be WAL), and opened from there.
import { existsSync, readFileSync } from "node:fs";
import Database from "better-sqlite3";

export function openLedgerReadOnly(file: string): Database.Database {
  if (existsSync(`${file}-wal`) || existsSync(`${file}-shm`)) return new Database(file, { readonly: true, fileMustExist: true });
  const image = readFileSync(file);
  if (image.length >= 100) {
    image[18] = 1;
    image[19] = 1;
  }
  return new Database(image, { readonly: true });
}
