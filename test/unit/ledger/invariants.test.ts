// The ledger's table invariants (what selftest runs) catch damage to any of the tables, and the
// full integrity check catches a damaged file. Real SQLite files under a temporary directory.
import { openSync, writeSync, closeSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Ledger } from "../../../src/ledger/ledger.js";
import { fakeClockBanks, keypadDeposit, type TestBank } from "../../helpers/bank.js";

const { open, advance } = fakeClockBanks();

const broken = (b: TestBank) => b.rt.ledger.invariants().filter((i) => i.rows.length).map((i) => i.rule);

describe("ledger invariants", () => {
  it("hold on a bank that has been used, and each kind of damage breaks its rule", async () => {
    const b = await open();
    const d1 = await keypadDeposit(b, advance);
    const d2 = await keypadDeposit(b, advance);
    expect(broken(b)).toEqual([]);
    const db = b.rt.ledger.db;
    const damage: [string, string, string][] = [
      ["UPDATE parcels SET status = 'picked_up' WHERE id = ?", d1.parcel, "a compartment's state agrees"],
      ["UPDATE compartments SET parcel_id = NULL, state = 'free' WHERE parcel_id = ?", d1.parcel, "a parcel under way"],
      ["UPDATE compartments SET parcel_id = ? WHERE id = 'B12'", d1.parcel, "a parcel is in one compartment"],
      ["UPDATE compartments SET state = 'free' WHERE parcel_id = ?", d2.parcel, "a compartment's state agrees"],
      ["UPDATE parcels SET compartment_id = 'B11' WHERE id = ?", d2.parcel, "a compartment's parcel exists"],
    ];
    for (const [sql, arg, rule] of damage) {
      db.exec("SAVEPOINT damage");
      db.prepare(sql).run(arg);
      expect(broken(b).some((r) => r.startsWith(rule))).toBe(true);
      db.exec("ROLLBACK TO damage; RELEASE damage");
    }
    // A live code whose parcel was removed.
    db.exec("SAVEPOINT damage");
    db.prepare("UPDATE parcels SET status = 'removed' WHERE id = ?").run(d1.parcel);
    db.prepare("UPDATE compartments SET state = 'free', parcel_id = NULL WHERE parcel_id = ?").run(d1.parcel);
    expect(broken(b)).toEqual(["a live pickup code belongs to a parcel waiting for it"]);
    db.exec("ROLLBACK TO damage; RELEASE damage");
    expect(broken(b)).toEqual([]);
  });

  it("the full integrity check finds a damaged page the tables themselves may not show", async () => {
    const b = await open();
    await keypadDeposit(b, advance);
    const file = join(b.dir, "data", "ledger.db");
    expect(Ledger.check(file, true)).toBe("ok");
    await b.rt.stop();
    const size = statSync(file).size;
    const fd = openSync(file, "r+");
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(size / 2 / 4096) * 4096);
    closeSync(fd);
    expect(Ledger.check(file, true)).not.toBe("ok");
  });
});
