// The ledger file's checks: before serving, the tables that do not grow (Ledger.checkForStart) and
// the log's tail by its hash chain, so a start stays as fast with years of history; the whole
// file right after, in the background (LedgerCheck): damage in old history is an alarm, once, and
// retention stops touching it. Real SQLite files with real damaged pages (found through dbstat).
import { spawnSync } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { LedgerCheck } from "../../../src/bank/storage.js";
import { Ledger } from "../../../src/ledger/ledger.js";
import { BETTER_SQLITE3, CHECK_SCRIPT, checkFile } from "../../../src/ledger/quick-check.js";
import { silentLogger } from "../../../src/log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const now = () => 1_800_000_000_000;
const log = silentLogger();

/** A closed ledger file with `events` events and a few credentials. */
function ledgerFile(events: number): string {
  const dir = mkdtempSync(join(tmpdir(), "lockerd-check-"));
  dirs.push(dir);
  const file = join(dir, "ledger.db");
  const ledger = new Ledger(file, { now });
  ledger.transact((tx) => {
    for (let i = 0; i < events; i++) tx.event({ type: "door.closed", compartment: `A0${(i % 9) + 1}`, data: { n: i, pad: "x".repeat(40) } });
    for (let i = 0; i < 50; i++) tx.insertCredential("code", Buffer.alloc(32, i), { parcelId: null }, now());
  });
  ledger.close();
  return file;
}

/** Overwrites one b-tree page of `name` with garbage: its first leaf (oldest rows) or last. */
function damage(file: string, name: string, which: "first" | "last" = "first"): number {
  const db = new Database(file, { readonly: true });
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  const pages = (db.prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path").all(name) as { pageno: number }[]).map((p) => p.pageno);
  db.close();
  expect(pages.length, `${name} has leaf pages`).toBeGreaterThan(0);
  const page = which === "first" ? pages[0]! : pages.at(-1)!;
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (page - 1) * pageSize);
  closeSync(fd);
  return page;
}

describe("the check before serving", () => {
  it("passes a damaged page of old events (checked in the background), and verifies the log's tail", () => {
    const file = ledgerFile(3000);
    expect(Ledger.checkForStart(file)).toBe("ok");
    damage(file, "events", "first");
    expect(Ledger.checkForStart(file)).toBe("ok");
    expect(Ledger.check(file)).not.toBe("ok"); // the whole file: what the background check runs
    const ledger = new Ledger(file, { now });
    expect(ledger.verifyTail(1000).ok).toBe(true);
    ledger.close();
  });

  it("refuses damage in a table that does not grow (the compartments), and in the log's tail; a growing table's damage is the background check's", () => {
    const a = ledgerFile(3000);
    damage(a, "compartments");
    expect(Ledger.checkForStart(a)).not.toBe("ok");
    const c = ledgerFile(3000);
    damage(c, "credentials");
    expect(Ledger.checkForStart(c)).toBe("ok");
    expect(Ledger.check(c)).not.toBe("ok");
    const b = ledgerFile(3000);
    damage(b, "events", "last");
    expect(() => new Ledger(b, { now })).toThrow(/damaged at the newest events/);
  });
});

describe("LedgerCheck, the whole file in the background", () => {
  const inProcess = (file: string) => ({ result: Promise.resolve(checkFile(file)), cancel: () => undefined });

  it("raises alarm.ledger_damaged once for a damaged file, with SQLite's words; nothing for a sound one", async () => {
    const sound = ledgerFile(3000);
    const damaged = ledgerFile(3000);
    damage(damaged, "events", "first");
    for (const [file, bad] of [[sound, false], [damaged, true]] as const) {
      const ledger = new Ledger(file, { now });
      const check = new LedgerCheck({ file, ledger, now, log, run: inProcess });
      const result = await check.runOnce();
      if (bad) expect(result).not.toBe("ok");
      else expect(result).toBe("ok");
      await check.runOnce(); // the daily one sees it again: no second alarm
      const alarms = ledger.eventsFrom(2990).filter((e) => e.type === "alarm.ledger_damaged");
      expect(alarms).toHaveLength(bad ? 1 : 0);
      expect(check.damaged !== null).toBe(bad);
      if (bad) expect(String(alarms[0]!.data.detail)).toMatch(/page|tree|malformed|corrupt/i);
      ledger.close();
    }
  });

  it("runs as a child process by default (the script a bundled daemon runs): damage, a sound file, and a file it cannot open", async () => {
    const damaged = ledgerFile(3000);
    damage(damaged, "events", "first");
    const ledger = new Ledger(damaged, { now });
    const check = new LedgerCheck({ file: damaged, ledger, now, log });
    expect(await check.runOnce()).toMatch(/malformed|page|tree/i);
    expect(check.damaged).not.toBeNull();
    ledger.close();
    const script = (file: string) => spawnSync(process.execPath, ["-e", CHECK_SCRIPT, BETTER_SQLITE3, file], { encoding: "utf8" });
    expect(JSON.parse(script(ledgerFile(10)).stdout)).toEqual({ result: "ok" });
    const missing = script(join(tmpdir(), "no-such-dir", "ledger.db"));
    expect(missing.status).toBe(1); // not damage: LedgerCheck says it could not run, and tries again
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/unable to open|no such|directory/i);
  });

  it("a check that cannot run is not damage: no alarm, tried again with the next", async () => {
    const file = ledgerFile(10);
    const ledger = new Ledger(file, { now });
    const check = new LedgerCheck({ file, ledger, now, log, run: () => ({ result: Promise.reject(new Error("spawn ENOMEM")), cancel: () => undefined }) });
    expect(await check.runOnce()).toMatch(/could not run/);
    expect(check.damaged).toBeNull();
    expect(ledger.eventsFrom(0, 100).some((e) => e.type === "alarm.ledger_damaged")).toBe(false);
    ledger.close();
  });

  it("a stop ends a running check at once and records nothing after", async () => {
    const file = ledgerFile(10);
    const ledger = new Ledger(file, { now });
    let cancelled = false;
    let finish: (r: string) => void = () => undefined;
    const check = new LedgerCheck({ file, ledger, now, log, run: () => ({ result: new Promise<string>((r) => (finish = r)), cancel: () => (cancelled = true) }) });
    const running = check.runOnce();
    check.stop();
    expect(cancelled).toBe(true);
    finish("*** in database main ***; Tree 7 page 7: btreeInitPage() returns error code 11");
    expect(await running).toBeUndefined();
    expect(check.damaged).toBeNull();
    ledger.close();
  });
});
