// Backups and restore, on real ledger files: a backup taken while the bank commits is one
// consistent moment, carries the key, and restored into a new SD card's directory it opens the
// stored parcel with its code; a damaged, altered or foreign file is refused before anything in the
// directory is touched.
import Database from "better-sqlite3";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BACKUP_TABLE, backupTemp, restoreBackup, writeBackup } from "../../../src/ledger/backup.js";
import { keyFingerprint, loadDeviceKey } from "../../../src/ledger/datadir.js";
import { restoreMain } from "../../../src/cli/restore.js";
import { fakeClockBanks, keypadDeposit } from "../../helpers/bank.js";
import { tempDir } from "../../helpers/daemon.js";

describe("backup and restore", () => {
  const banks = fakeClockBanks();

  /** better-sqlite3's backup steps on setImmediate, which the fake clock holds: run it forward until done. */
  async function drive<T>(p: Promise<T>): Promise<T> {
    let done = false;
    void p.finally(() => (done = true)).catch(() => {});
    while (!done) await banks.advance(1);
    return p;
  }

  async function bankWithParcel() {
    const b = await banks.open();
    const dep = await keypadDeposit(b, banks.advance);
    const key = loadDeviceKey(join(b.dir, "data"), false);
    return { b, dep, key };
  }

  it("a backup taken while the bank commits restores to a bank that opens the stored parcel with its code", async () => {
    const { b, dep, key } = await bankWithParcel();
    const tmp = backupTemp(join(b.dir, "data"));
    // Commits go on while the copy is made (the backup API copies between them).
    const copying = writeBackup(b.rt.ledger, key, tmp, Date.now());
    for (let i = 0; i < 20; i++) b.rt.technician.setEnabled("B05", i % 2 === 1, { user: "tech", reason: "backup under load" });
    const info = await drive(copying);
    expect(statSync(tmp).mode & 0o777).toBe(0o600);
    expect(info).toMatchObject({ keyFingerprint: keyFingerprint(key), events: info.headSeq });
    expect(info.headSeq).toBeGreaterThan(5);

    // A new SD card: an empty directory.
    const target = join(tempDir(), "data");
    const r = restoreBackup(tmp, target, Date.now());
    expect(r).toMatchObject({ headSeq: info.headSeq, parcelsStored: 1, setAsideIn: undefined });
    expect(readFileSync(join(target, "device.key"))).toEqual(key);
    expect(statSync(join(target, "device.key")).mode & 0o777).toBe(0o600);
    // The key is not left inside the restored ledger.
    const db = new Database(join(target, "ledger.db"), { readonly: true });
    expect(db.prepare("SELECT 1 FROM sqlite_master WHERE name = ?").get(BACKUP_TABLE)).toBeUndefined();
    db.close();

    const origin = b.dir;
    await b.rt.stop();
    const restored = await banks.open(undefined, join(target, ".."));
    expect(restored.dir).not.toBe(origin);
    const first = restored.events("system.restored");
    expect(first).toHaveLength(1);
    expect(first[0]!.seq).toBe(info.headSeq + 1);
    expect(first[0]!.data).toMatchObject({ fromSeq: info.headSeq, previousInstance: null });
    restored.hw.keypad.keys(`${dep.code}#`);
    expect(restored.screen()).toMatch(new RegExp(`${dep.compartment}`));
    await banks.advance(200);
    restored.hw.doors.set(restored.rt.bank.layoutOf(dep.compartment).lock, "closed");
    expect(restored.events("parcel.picked_up")).toHaveLength(1);
    expect(restored.rt.ledger.verify()).toMatchObject({ ok: true });
  });

  it("refuses a damaged, altered or foreign file before it touches the directory; a bank there is set aside, never deleted", async () => {
    const { b, key } = await bankWithParcel();
    const dataDir = join(b.dir, "data");
    const good = backupTemp(dataDir);
    await drive(writeBackup(b.rt.ledger, key, good, Date.now()));
    const work = tempDir();
    const variant = (name: string, change: (db: Database.Database) => void) => {
      const f = join(work, name);
      writeFileSync(f, readFileSync(good));
      const db = new Database(f);
      change(db);
      db.close();
      return f;
    };
    const target = join(work, "target");
    mkdirSync(target);
    writeFileSync(join(target, "keep.txt"), "untouched");
    const listing = () => readdirSync(target).sort();
    const before = listing();
    const cases: [string, string, RegExp][] = [
      ["not sqlite", (writeFileSync(join(work, "junk"), "not a database at all".repeat(100)), join(work, "junk")), /not an intact SQLite file|not a database/],
      ["plain ledger", variant("plain", (db) => db.exec(`DROP TABLE ${BACKUP_TABLE}`)), /not a lockerd backup/],
      ["another key", variant("key", (db) => db.prepare(`UPDATE ${BACKUP_TABLE} SET value = ? WHERE key = 'deviceKey'`).run(Buffer.alloc(32, 7).toString("base64"))), /does not belong to its ledger/],
      ["an event altered", variant("event", (db) => db.prepare("UPDATE events SET data = '{\"by\":\"mallory\"}' WHERE seq = 3").run()), /custody chain is broken at seq 3/],
      ["an event removed", variant("gap", (db) => db.prepare("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)").run()), /says \d+ events, the chain has/],
    ];
    for (const [what, file, message] of cases) {
      expect(() => restoreBackup(file, target, Date.now()), what).toThrow(message);
      expect(listing(), what).toEqual(before);
    }
    // lockerd restore's exit codes: 65 for a bad file, 64 for usage.
    const err: string[] = [];
    expect(await restoreMain([cases[3]![1], "--data", target], (s) => err.push(s))).toBe(65);
    expect(err.join("")).toMatch(/custody chain is broken/);
    expect(await restoreMain([good], () => {})).toBe(64);

    // Over an existing bank: its files go to replaced-<time>/.
    const r = restoreBackup(good, dataDir.replace(/data$/, "other"), Date.now());
    expect(r.setAsideIn).toBeUndefined();
    const again = restoreBackup(good, r.dataDir, Date.now() + 1000);
    expect(again.setAsideIn).toMatch(/replaced-/);
    expect(readdirSync(again.setAsideIn!).sort()).toEqual(["bank.json", "device.key", "ledger.db"]);
    expect(existsSync(join(r.dataDir, "ledger.db"))).toBe(true);
  });
});
