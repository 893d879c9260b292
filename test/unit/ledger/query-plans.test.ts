// What the running bank asks of its event log must not read the whole log: with a busy bank's
// years (10M events) one such query costs seconds on the event loop that opens doors. Every
// statement the bank prepares (captured from better-sqlite3 itself) that reads `events` is
// explained by SQLite; a plain `SCAN events` is allowed only where reading the whole log is the
// point, each named below with why.
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import { removeDir } from "../../helpers/daemon.js";
import { testBank } from "../../helpers/bank.js";

/**
 * Scans that stop early, and whole-log statements by design (not on any path a door, a status or a
 * watch takes). SQLite says SCAN for a rowid walk that a LIMIT ends after a row or a few.
 */
const WHOLE_LOG = [
  /^SELECT [\w, *]+ FROM events ORDER BY seq( DESC)? LIMIT (\d+|\?)$/, // the head, the first event, the tail: a walk from one end
  /^SELECT ts FROM events WHERE type = \? AND compartment = \? ORDER BY seq DESC LIMIT 1$/, // an open door's door.opened: among the newest
  /^SELECT \* FROM events ORDER BY seq$/, // verify(): selftest, restore, lockerctl verify
  /^SELECT count\(\*\) AS events FROM events$/, // counts(): selftest's "ledger size"
  /json_extract\(data, '\$\.command'\) = \?/, // eventsCausedBy: once, for a command a restart cut short
];

afterEach(() => vi.restoreAllMocks());

describe("the event log's query plans", () => {
  it("no statement of the running bank reads the whole log, but those meant to", async () => {
    const sql = new Set<string>();
    const prepare = Database.prototype.prepare;
    vi.spyOn(Database.prototype, "prepare").mockImplementation(function (this: Database.Database, source: string) {
      sql.add(source.replace(/\s+/g, " ").trim());
      return prepare.call(this, source);
    });
    const b = await testBank();
    try {
      b.rt.technician.alarms(); // what lockerctl status and watch ask for
      const reading = [...sql].filter((s) => /\bFROM events\b/.test(s) && !/^(INSERT|DELETE|UPDATE|EXPLAIN)/.test(s));
      expect(reading.length).toBeGreaterThan(8);
      const scans: string[] = [];
      for (const s of reading) {
        const named = [...s.matchAll(/@(\w+)/g)].map((m) => m[1]!);
        const positional = (s.match(/\?/g) ?? []).length;
        const explain = b.rt.ledger.db.prepare(`EXPLAIN QUERY PLAN ${s}`);
        const plan = (named.length ? explain.all(Object.fromEntries(named.map((n) => [n, null]))) : explain.all(...Array<null>(positional).fill(null))) as { detail: string }[];
        const full = plan.some((p) => /^SCAN events$/.test(p.detail));
        if (full && !WHOLE_LOG.some((re) => re.test(s))) scans.push(`${s}\n    ${plan.map((p) => p.detail).join(" | ")}`);
      }
      expect(scans, scans.join("\n")).toEqual([]);
    } finally {
      await b.rt.stop();
      removeDir(b.dir);
    }
  });
});
