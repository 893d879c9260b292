import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { secretHash } from "../../../src/domain/credentials.js";
import { GENESIS_HASH, type LedgerEvent } from "../../../src/domain/events.js";
import { ErrorCode, isLockerError, LockerError } from "../../../src/errors.js";
import { ensureDataDir, loadDeviceKey, takeDataDirLock } from "../../../src/ledger/datadir.js";
import { Ledger, SLOW_WRITE_MS } from "../../../src/ledger/ledger.js";
import { migrate, MIGRATIONS } from "../../../src/ledger/migrations.js";
import { ROOT } from "../../helpers/daemon.js";

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const KEY = Buffer.alloc(32, 7);

let dir: string;
let file: string;
let clock: number;
let opened: Array<{ close(): void }>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "lockerd-ledger-"));
  file = join(dir, "ledger.db");
  clock = T0;
  opened = [];
});

afterEach(() => {
  for (const l of opened.reverse()) l.close();
  rmSync(dir, { recursive: true, force: true });
});

function open(): Ledger {
  const l = new Ledger(file, { now: () => clock });
  opened.push(l);
  return l;
}

/** A second, raw connection to the same file, as another process would see it. */
function raw(): Database.Database {
  const db = new Database(file);
  opened.push(db);
  return db;
}

/** Two compartments and their "enabled" events: seq 1 and 2. */
function seed(l: Ledger): void {
  l.transact((tx) => {
    tx.insertCompartment({ id: "A01", position: 0, size: "S", refrigerated: false, accessible: true, since: clock });
    tx.event({ type: "compartment.enabled", compartment: "A01", data: { size: "S" } });
    tx.insertCompartment({ id: "A02", position: 1, size: "M", refrigerated: true, accessible: false, since: clock });
    tx.event({ type: "compartment.enabled", compartment: "A02", data: { size: "M" } });
  });
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("Ledger: storage", () => {
  it("uses WAL with synchronous=FULL and foreign keys on", () => {
    const l = open();
    expect(l.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(l.db.pragma("synchronous", { simple: true })).toBe(2); // FULL
    expect(l.db.pragma("foreign_keys", { simple: true })).toBe(1);
    // WAL is a property of the file, not just of this connection.
    expect(raw().pragma("journal_mode", { simple: true })).toBe("wal");
  });

  it("applies every migration: user_version = MIGRATIONS.length", () => {
    const l = open();
    expect(MIGRATIONS.length).toBeGreaterThan(0);
    expect(l.db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
    const tables = (l.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map(
      (r) => r.name,
    );
    expect(tables).toEqual(["commands", "compartments", "credentials", "deadlines", "events", "finger_slots", "meta", "parcels", "people", "terminals"]);
  });

  it("upgrades a version-1 ledger in place, keeping its data", () => {
    const file = join(dir, "v1.db");
    const db = new Database(file);
    db.exec(MIGRATIONS[0]!);
    db.pragma("user_version = 1");
    db.prepare("INSERT INTO parcels (id, status, size, created_at) VALUES ('P1', 'stored', 'S', 1)").run();
    db.close();
    const l = new Ledger(file, { now: () => 5 });
    try {
      expect(l.db.pragma("user_version", { simple: true })).toBe(MIGRATIONS.length);
      expect(l.parcel("P1")).toMatchObject({ status: "stored", expiredAt: null });
    } finally {
      l.close();
    }
  });

  it("migrate runs each migration once, and refuses a newer schema", () => {
    const db = raw();
    expect(migrate(db)).toEqual({ from: 0, to: MIGRATIONS.length });
    expect(migrate(db)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length });
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    expect(() => migrate(db)).toThrow(/newer/);
  });

  it("a ledger file from a newer lockerd is LockerError(storage)", () => {
    const db = raw();
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    const err = thrown(() => open());
    expect(isLockerError(err, ErrorCode.Storage)).toBe(true);
  });
});

describe("Ledger: transactions", () => {
  it("commits state and its event together", () => {
    const l = open();
    expect(l.headSeq).toBe(0);
    seed(l);
    expect(l.compartments().map((c) => c.id)).toEqual(["A01", "A02"]);
    expect(l.compartment("A01")).toMatchObject({ size: "S", accessible: true, refrigerated: false, state: "free", enabled: true, door: "unknown" });
    const events = l.eventsFrom(1);
    expect(events.map((e) => [e.seq, e.type, e.compartment])).toEqual([
      [1, "compartment.enabled", "A01"],
      [2, "compartment.enabled", "A02"],
    ]);
    expect(events[0]!.prevHash).toBe(GENESIS_HASH);
    expect(events[1]!.prevHash).toBe(events[0]!.hash);
    expect(events[0]!.ts).toBe(T0);
    expect(l.headSeq).toBe(2);
    // Durable: another connection sees both.
    const other = raw();
    expect(other.prepare("SELECT count(*) AS n FROM compartments").get()).toEqual({ n: 2 });
    expect(other.prepare("SELECT count(*) AS n FROM events").get()).toEqual({ n: 2 });
  });

  it("returns what the transaction function returns", () => {
    const l = open();
    const ev = l.transact((tx) => tx.event({ type: "system.started" }));
    expect(ev).toMatchObject({ seq: 1, type: "system.started", compartment: null, parcel: null, actor: null, data: {} });
    expect(l.eventsFrom(1)[0]).toEqual(ev);
  });

  it("an exception rolls back the state change AND the event; the next event has the next gap-free seq", () => {
    const l = open();
    seed(l);
    const before = l.compartment("A01");
    const head = l.eventsFrom(2)[0]!;

    const boom = new Error("boom");
    expect(() =>
      l.transact((tx) => {
        tx.updateCompartment("A01", { state: "reserved", parcelId: "P-1" });
        tx.event({ type: "compartment.reserved", compartment: "A01", parcel: "P-1" });
        tx.event({ type: "parcel.reserved", compartment: "A01", parcel: "P-1" });
        throw boom;
      }),
    ).toThrow(boom);

    expect(l.compartment("A01")).toEqual(before);
    expect(l.counts().events).toBe(2);
    expect(l.eventsOfParcel("P-1")).toEqual([]);
    expect(l.headSeq).toBe(2);

    clock += 1000;
    const next = l.transact((tx) => tx.event({ type: "system.started" }));
    expect(next.seq).toBe(3);
    expect(next.prevHash).toBe(head.hash);
    expect(l.verify()).toEqual({ ok: true, checked: 3 });
  });

  it("a nested transact is part of the outer one and rolls back with it", () => {
    const l = open();
    seed(l);
    expect(() =>
      l.transact(() => {
        l.transact((tx) => {
          tx.updateCompartment("A02", { enabled: false });
          tx.event({ type: "compartment.disabled", compartment: "A02" });
        });
        throw new Error("outer fails after the inner one finished");
      }),
    ).toThrow(/outer/);
    expect(l.compartment("A02")!.enabled).toBe(true);
    expect(l.headSeq).toBe(2);
    expect(l.transact((tx) => tx.event({ type: "system.started" })).seq).toBe(3);
  });

  it("refuses writes outside transact", () => {
    const l = open();
    seed(l);
    const attempts: Array<() => unknown> = [
      () => l.tx.event({ type: "system.started" }),
      () => l.tx.insertCompartment({ id: "B01", position: 2, size: "L", refrigerated: false, accessible: false, since: clock }),
      () => l.tx.updateCompartment("A01", { state: "fault" }),
      () => l.tx.insertParcel({ id: "P-1", status: "reserved", size: "S", compartmentId: "A01", recipientId: null, depositorId: null, createdAt: clock }),
      () => l.tx.insertCredential("code", secretHash(KEY, "code", "305918"), {}, clock),
      () => l.tx.setMeta("k", "v"),
      () => l.tx.setTerminal("keypad-1", { failures: 1, lockedUntil: 0, windowStart: 0, windowFailures: 1, lastFailureAt: 0 }),
    ];
    for (const attempt of attempts) {
      const err = thrown(attempt);
      expect(err).toBeInstanceOf(LockerError);
      expect((err as LockerError).code).toBe(ErrorCode.Internal);
    }
    expect(l.compartments().map((c) => [c.id, c.state])).toEqual([
      ["A01", "free"],
      ["A02", "free"],
    ]);
    expect(l.counts().events).toBe(2);
    expect(l.headSeq).toBe(2);
    expect(l.parcel("P-1")).toBeUndefined();
    expect(l.meta("k")).toBeUndefined();
    expect(l.terminal("keypad-1")).toBeUndefined();
  });

  it("an update of a row that does not exist fails the transaction", () => {
    const l = open();
    seed(l);
    expect(() =>
      l.transact((tx) => {
        tx.event({ type: "compartment.disabled", compartment: "Z99" });
        tx.updateCompartment("Z99", { enabled: false });
      }),
    ).toThrow(LockerError);
    expect(l.headSeq).toBe(2);
  });
});

describe("Ledger: onSlowWrite", () => {
  it("reports a committed write that took SLOW_WRITE_MS or more, with how long; never a quicker one, nor after unsubscribing", () => {
    const l = open();
    seed(l);
    const heard: number[] = [];
    const off = l.onSlowWrite((ms) => heard.push(ms));
    // A write held inside its transaction as long as a stalling disk's sync would hold it.
    l.transact((tx) => {
      tx.event({ type: "door.opened", compartment: "A01" });
      const until = performance.now() + SLOW_WRITE_MS + 10;
      while (performance.now() < until);
    });
    expect(heard).toHaveLength(1);
    expect(heard[0]).toBeGreaterThanOrEqual(SLOW_WRITE_MS + 10);
    for (let i = 0; i < 20; i++) l.transact((tx) => tx.event({ type: "door.closed", compartment: "A01" }));
    // (This machine's disk may stall now and then: whatever was reported took the threshold or more.)
    for (const ms of heard) expect(ms).toBeGreaterThanOrEqual(SLOW_WRITE_MS);
    off();
    const n = heard.length;
    l.transact((tx) => {
      const until = performance.now() + SLOW_WRITE_MS + 10;
      while (performance.now() < until);
      tx.setMeta("k", "v");
    });
    expect(heard).toHaveLength(n);
  });
});

describe("Ledger: onCommit", () => {
  it("tells listeners of the events only after COMMIT, in seq order, once per transaction", () => {
    const l = open();
    seed(l);
    const heard: LedgerEvent[][] = [];
    const visibleWhenHeard: number[] = [];
    l.onCommit((events) => {
      heard.push([...events]);
      visibleWhenHeard.push(raw().prepare("SELECT count(*) AS n FROM events").pluck().get() as number);
    });

    const written = l.transact((tx) => {
      const a = tx.event({ type: "door.opened", compartment: "A01" });
      const b = tx.event({ type: "door.closed", compartment: "A01" });
      expect(heard).toEqual([]); // not yet: still inside the transaction
      return [a, b];
    });

    expect(heard).toEqual([written]);
    expect(heard[0]!.map((e) => e.seq)).toEqual([3, 4]);
    expect(visibleWhenHeard).toEqual([4]); // already committed when the listener ran
  });

  it("says nothing about a rolled-back transaction, or one without events", () => {
    const l = open();
    seed(l);
    const heard: LedgerEvent[][] = [];
    l.onCommit((events) => heard.push([...events]));
    expect(() =>
      l.transact((tx) => {
        tx.event({ type: "door.opened", compartment: "A01" });
        throw new Error("rolled back");
      }),
    ).toThrow();
    l.transact((tx) => tx.setMeta("k", "v"));
    expect(heard).toEqual([]);
    // The next committed event is the next seq, not the rolled-back one re-used twice.
    l.transact((tx) => tx.event({ type: "door.closed", compartment: "A01" }));
    expect(heard.map((evs) => evs.map((e) => [e.seq, e.type]))).toEqual([[[3, "door.closed"]]]);
  });

  it("stops calling a listener once it unsubscribes", () => {
    const l = open();
    let calls = 0;
    const off = l.onCommit(() => calls++);
    l.transact((tx) => tx.event({ type: "system.started" }));
    off();
    l.transact((tx) => tx.event({ type: "system.stopped" }));
    expect(calls).toBe(1);
  });
});

describe("Ledger: credentials", () => {
  it("refuses a second LIVE credential with the same hash with LockerError(busy), and rolls its transaction back", () => {
    const l = open();
    const hash = secretHash(KEY, "code", "305918");
    const first = l.transact((tx) => tx.insertCredential("code", hash, { parcelId: "P-1" }, clock));
    expect(l.liveCredential(hash)).toEqual({ id: first, kind: "code", personId: null, parcelId: "P-1", status: "live" });

    const err = thrown(() =>
      l.transact((tx) => {
        tx.event({ type: "code.issued", parcel: "P-2" });
        tx.insertCredential("code", hash, { parcelId: "P-2" }, clock);
      }),
    );
    expect(isLockerError(err, ErrorCode.Busy)).toBe(true);
    expect(l.liveCredential(hash)!.parcelId).toBe("P-1");
    expect(l.headSeq).toBe(0);
    expect(l.liveCodeCount()).toBe(1);
  });

  it("a revoked credential's value can be issued again", () => {
    const l = open();
    const hash = secretHash(KEY, "code", "305918");
    const first = l.transact((tx) => tx.insertCredential("code", hash, { parcelId: "P-1" }, clock));
    l.transact((tx) => tx.setCredentialStatus(first, "revoked", clock));
    expect(l.liveCredential(hash)).toBeUndefined();
    expect(l.parcelCredential("P-1", "code")).toEqual({ id: first, status: "revoked" });

    const second = l.transact((tx) => tx.insertCredential("code", hash, { parcelId: "P-2" }, clock));
    expect(second).not.toBe(first);
    expect(l.liveCredential(hash)).toMatchObject({ id: second, parcelId: "P-2", status: "live" });
    expect(l.liveCodeCount()).toBe(1);
  });

  it("revokeParcelCredentials revokes only that parcel's live credentials of that kind", () => {
    const l = open();
    const h1 = secretHash(KEY, "code", "305918");
    const h2 = secretHash(KEY, "code", "482917");
    l.transact((tx) => {
      tx.insertCredential("code", h1, { parcelId: "P-1" }, clock);
      tx.insertCredential("code", h2, { parcelId: "P-2" }, clock);
    });
    expect(l.transact((tx) => tx.revokeParcelCredentials("P-1", "code", clock))).toBe(1);
    expect(l.liveCredential(h1)).toBeUndefined();
    expect(l.liveCredential(h2)).toBeDefined();
  });
});

describe("Ledger: close and reopen", () => {
  it("keeps compartments, parcels and events; headSeq continues and the chain verifies", () => {
    let l = open();
    seed(l);
    clock += 5000;
    l.transact((tx) => {
      tx.insertParcel({ id: "P-1", status: "stored", size: "S", compartmentId: "A01", recipientId: "p-1001", depositorId: "courier-1", createdAt: clock });
      tx.updateCompartment("A01", { state: "occupied", parcelId: "P-1", door: "closed", since: clock, pulses: 1 });
      tx.event({ type: "parcel.deposited", compartment: "A01", parcel: "P-1", actor: "courier-1", data: { size: "S", nested: { b: [1, 2], a: null } } });
    });
    const compartments = l.compartments();
    const parcel = l.parcel("P-1");
    const events = l.eventsFrom(1);
    const head = l.headSeq;
    expect(head).toBe(3);
    l.close();

    l = open();
    expect(l.compartments()).toEqual(compartments);
    expect(l.compartment("A01")).toMatchObject({ state: "occupied", parcelId: "P-1", door: "closed", pulses: 1 });
    expect(l.parcel("P-1")).toEqual(parcel);
    expect(l.parcelsOf("p-1001", "stored").map((p) => p.id)).toEqual(["P-1"]);
    expect(l.eventsFrom(1)).toEqual(events);
    expect(l.eventsOfParcel("P-1").map((e) => e.seq)).toEqual([3]);
    expect(l.headSeq).toBe(head);
    expect(l.verify()).toEqual({ ok: true, checked: 3 });

    const next = l.transact((tx) => tx.event({ type: "system.started" }));
    expect(next.seq).toBe(4);
    expect(next.prevHash).toBe(events[2]!.hash);
    expect(l.verify()).toEqual({ ok: true, checked: 4 });
  });

  it("detects an event whose data was changed in the file with raw SQL, at that seq", () => {
    let l = open();
    seed(l);
    l.transact((tx) => tx.event({ type: "parcel.picked_up", compartment: "A01", parcel: "P-1", data: { via: "code" } }));
    expect(l.verify().ok).toBe(true);
    l.close();

    const db = raw();
    db.prepare("UPDATE events SET data = ? WHERE seq = 2").run(JSON.stringify({ size: "L" }));
    db.close();

    l = open();
    const check = l.verify();
    expect(check.ok).toBe(false);
    expect(check.brokenAt).toBe(2);
    expect(check.checked).toBe(1);
  });

  it("detects a deleted event as a gap", () => {
    const l = open();
    seed(l);
    l.transact((tx) => tx.event({ type: "system.started" }));
    l.db.prepare("DELETE FROM events WHERE seq = 2").run();
    expect(l.verify()).toMatchObject({ ok: false, brokenAt: 3 });
  });

  // What is hashed must be what is stored: a value JSON turns into something else (a Date → string)
  // must not make a freshly committed event fail verify().
  it("an event the ledger accepted always verifies (data holding a Date)", () => {
    const l = open();
    let accepted = true;
    try {
      l.transact((tx) => tx.event({ type: "system.started", data: { at: new Date(T0) } }));
    } catch {
      accepted = false;
    }
    expect(accepted ? l.verify() : { ok: true, checked: 1 }).toEqual({ ok: true, checked: 1 });
  });
});

describe("data directory", () => {
  const mode = (p: string) => statSync(p).mode & 0o777;

  it("ensureDataDir creates a 0700 directory, parents included", () => {
    const data = join(dir, "var", "lockerd");
    ensureDataDir(data);
    expect(statSync(data).isDirectory()).toBe(true);
    expect(mode(data)).toBe(0o700);
  });

  it("ensureDataDir tightens an existing 0755 directory and keeps its contents", () => {
    const data = join(dir, "data");
    mkdirSync(data);
    chmodSync(data, 0o755);
    writeFileSync(join(data, "keep"), "x");
    ensureDataDir(data);
    expect(mode(data)).toBe(0o700);
    expect(readFileSync(join(data, "keep"), "utf8")).toBe("x");
  });

  it("ensureDataDir on a path that is a file is LockerError(storage)", () => {
    const notDir = join(dir, "file");
    writeFileSync(notDir, "");
    expect(isLockerError(thrown(() => ensureDataDir(join(notDir, "sub"))), ErrorCode.Storage)).toBe(true);
  });

  it("loadDeviceKey creates a 32-byte 0600 key file and returns the same key next time", () => {
    const key = loadDeviceKey(dir);
    const keyFile = join(dir, "device.key");
    expect(key).toHaveLength(32);
    expect(mode(keyFile)).toBe(0o600);
    expect(readFileSync(keyFile).equals(key)).toBe(true);
    expect(key.equals(Buffer.alloc(32))).toBe(false);
    expect(loadDeviceKey(dir).equals(key)).toBe(true);
  });

  it("loadDeviceKey gives another data directory another key", () => {
    const other = join(dir, "other");
    ensureDataDir(other);
    expect(loadDeviceKey(dir).equals(loadDeviceKey(other))).toBe(false);
  });

  it("loadDeviceKey tightens a 0644 key file and refuses one of the wrong size", () => {
    const keyFile = join(dir, "device.key");
    const key = Buffer.alloc(32, 9);
    writeFileSync(keyFile, key);
    chmodSync(keyFile, 0o644);
    expect(loadDeviceKey(dir).equals(key)).toBe(true);
    expect(mode(keyFile)).toBe(0o600);

    writeFileSync(keyFile, Buffer.alloc(16, 1));
    expect(isLockerError(thrown(() => loadDeviceKey(dir)), ErrorCode.Storage)).toBe(true);
    expect(readFileSync(keyFile)).toHaveLength(16); // not silently replaced
  });
});

describe("data directory lock", () => {
  const pidFile = () => join(dir, "lockerd.pid");

  it("takes a free directory: lockerd.pid holds our pid, 0600, and release frees it for the next", async () => {
    const release = await takeDataDirLock(dir);
    expect(readFileSync(pidFile(), "utf8").trim()).toBe(String(process.pid));
    expect(statSync(pidFile()).mode & 0o777).toBe(0o600);
    release();
    expect(existsSync(pidFile())).toBe(false);
    (await takeDataDirLock(dir))(); // free again
  });

  it("refuses while a holder lives, with LockerError(busy) naming its pid", async () => {
    const release = await takeDataDirLock(dir);
    const err = await takeDataDirLock(dir).then(() => "taken twice", (e: unknown) => e);
    expect(isLockerError(err, ErrorCode.Busy)).toBe(true);
    expect((err as LockerError).message).toContain(`in use by lockerd pid ${process.pid}`);
    release();
  });

  it("a pid file naming a live process (a PID reused after a power cut) does not keep the bank down", async () => {
    writeFileSync(pidFile(), `${process.ppid}\n`); // alive, and not a lockerd holding this directory
    const release = await takeDataDirLock(dir);
    expect(readFileSync(pidFile(), "utf8").trim()).toBe(String(process.pid));
    release();
    writeFileSync(pidFile(), "not a pid\n");
    (await takeDataDirLock(dir))();
  });

  it("dies with its process: a holder killed with SIGKILL leaves the directory free at once", async () => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", `
      const { takeDataDirLock } = await import(${JSON.stringify(join(ROOT, "dist/src/ledger/datadir.js"))});
      await takeDataDirLock(${JSON.stringify(dir)});
      console.log("held");
      setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    const err = await takeDataDirLock(dir).then(() => "taken while held", (e: unknown) => e);
    expect(isLockerError(err, ErrorCode.Busy)).toBe(true);
    expect((err as LockerError).message).toContain(`pid ${child.pid}`);
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    expect(readFileSync(pidFile(), "utf8").trim()).toBe(String(child.pid)); // its file is stale...
    const release = await takeDataDirLock(dir); // ...and means nothing
    release();
  });

  it("the same directory by another path (a symlink) is the same lock", async () => {
    const link = `${dir}-link`;
    symlinkSync(dir, link);
    try {
      const release = await takeDataDirLock(dir);
      const err = await takeDataDirLock(link).then(() => "taken twice", (e: unknown) => e);
      expect(isLockerError(err, ErrorCode.Busy)).toBe(true);
      release();
    } finally {
      unlinkSync(link);
    }
  });
});
