// lockerctl without lockerd: compartments, events, stats and selftest read the ledger file,
// read-only, once the daemon has stopped (cleanly, or killed with its WAL left behind), say so, and
// leave the data directory as it was; the other commands still say lockerd is not running. Also the
// command line around it: per-command help, "did you mean", `--type alarm`, the inspection hold.
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, createReadStream, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { CompartmentRow, LedgerEventView, SelftestResult } from "../../src/admin/protocol.js";
import { StatsResult } from "../../src/admin/stats.js";
import { MIGRATIONS } from "../../src/ledger/migrations.js";
import { courierDeposit, removeDir, ROOT, SimClient, startDaemon, stopDaemon, tempDir, type Daemon } from "../helpers/daemon.js";

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");
const Compartments = z.object({ compartments: z.array(CompartmentRow) });
const Events = z.object({ events: z.array(LedgerEventView) });
const Source = z.object({ source: z.literal("ledger"), ledger: z.string() });
const NOTE = /lockerd is not running: read from the ledger file (\S+ledger\.db) \(read-only; live door and device states unknown\)/;

let d: Daemon;
let sim: SimClient | undefined;
const dirs: string[] = [];

function run(args: string[], opts: { data?: string | null; cmd?: string[] } = {}) {
  const data = opts.data === null ? [] : ["--data", opts.data ?? d.dataDir];
  const [cmd, ...pre] = opts.cmd ?? [process.execPath];
  const r = spawnSync(cmd!, [...pre, ...(opts.cmd ? [process.execPath] : []), CTL, ...data, ...args], { encoding: "utf8", timeout: 15_000, env: { ...process.env, NO_COLOR: "" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A JSON answer read from the ledger: exit 0, the note on stderr, `source` and the ledger's path in the JSON. */
function fromLedger<T>(schema: z.ZodType<T>, args: string[]): T {
  const r = run([...args, "--json"]);
  expect(r.code, r.err).toBe(0);
  expect(r.err).toMatch(NOTE);
  expect(NOTE.exec(r.err)![1]).toBe(join(d.dataDir, "ledger.db"));
  const json: unknown = JSON.parse(r.out);
  expect(Source.parse(json).ledger).toBe(join(d.dataDir, "ledger.db"));
  return schema.parse(json);
}

const sha = (file: string) =>
  new Promise<string>((res, rej) => {
    const h = createHash("sha256");
    createReadStream(file).on("data", (b) => h.update(b)).on("end", () => res(h.digest("hex"))).on("error", rej);
  });

/** What must not change: the directory's names, and the bytes and mtime of these files. */
async function snapshot(dir: string, files: string[]) {
  return { names: readdirSync(dir).sort(), files: await Promise.all(files.map(async (f) => ({ f, mtime: statSync(join(dir, f)).mtimeMs, sha: await sha(join(dir, f)) }))) };
}

async function pickUp(code: string): Promise<string> {
  const m = sim!.mark();
  sim!.send({ op: "keys", keys: `${code}#` });
  const unlock = await sim!.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
  await sim!.waitFor((e) => e.ev === "door" && e.compartment === unlock.compartment && e.state === "open", { from: m });
  sim!.send({ op: "door", compartment: unlock.compartment, state: "closed" });
  await sim!.waitFor((e) => e.ev === "state" && e.compartments.some((c) => c.id === unlock.compartment && c.state === "free"), { from: m });
  return unlock.compartment;
}

beforeAll(async () => {
  d = await startDaemon();
  sim = await SimClient.connect(d.socket);
});
afterAll(async () => {
  sim?.close();
  if (d) {
    await stopDaemon(d);
    removeDir(d.dir);
  }
  dirs.forEach(removeDir);
});

describe("lockerctl without the daemon", () => {
  it("live: a forced-open compartment shows as held for inspection; --type alarm is the alarm.* family", async () => {
    const { code } = await courierDeposit(sim!);
    await pickUp(code);
    await courierDeposit(sim!); // one parcel stays
    const m = sim!.mark();
    sim!.send({ op: "door", compartment: "A10", state: "open" }); // no pulse: forced
    await sim!.waitFor((e) => e.ev === "alarm" && e.type === "alarm.forced_open" && e.compartment === "A10", { from: m });
    sim!.send({ op: "door", compartment: "A10", state: "closed" });
    await sim!.state();

    const r = run(["compartments", "--json"]);
    expect(r.code, r.err).toBe(0);
    const live = JSON.parse(r.out) as { source: string };
    expect(live.source).toBe("daemon");
    const a10 = Compartments.parse(live).compartments.find((c) => c.id === "A10")!;
    expect(a10).toMatchObject({ held: "inspection", state: "free", enabled: true });
    expect(a10.heldSince).toBeGreaterThan(Date.now() - 60_000);
    expect(Compartments.parse(live).compartments.filter((c) => c.held !== null).map((c) => c.id)).toEqual(["A10"]);
    const human = run(["compartments"]).out.split("\n");
    expect(human[0]).toMatch(/^ID\s+KEY\s+SIZE\s+STATE\s+DOOR\s+ENABLED\s+HELD\s+PARCEL AGE/);
    expect(human.find((l) => l.startsWith("A10"))).toMatch(/free\s+closed\s+yes\s+inspection \d+s/);

    const alarms = Events.parse(JSON.parse(run(["events", "--type", "alarm", "--json"]).out)).events;
    expect(alarms.map((e) => [e.type, e.compartment])).toEqual([["alarm.forced_open", "A10"]]);
    const exact = Events.parse(JSON.parse(run(["events", "--type", "parcel.picked_up", "--json"]).out)).events;
    expect(exact.length).toBe(1);
    expect(exact.every((e) => e.type === "parcel.picked_up")).toBe(true);
    // A family is whole segments: "alarm" never matches a type that merely begins with those letters.
    expect(Events.parse(JSON.parse(run(["events", "--type", "alar", "--json"]).out)).events).toEqual([]);
  });

  it("reads events, compartments, stats and selftest from the ledger of a stopped lockerd, changing nothing", async () => {
    sim!.close();
    sim = undefined;
    expect(await stopDaemon(d)).toBe(0);
    const before = await snapshot(d.dataDir, ["ledger.db"]);
    expect(before.names).not.toContain("ledger.db-wal"); // a clean stop wrote everything back

    const all = fromLedger(Events, ["events", "--since", "1", "--limit", "10000"]).events;
    expect(all[0]!.seq).toBe(1);
    expect(all.at(-1)!.type).toBe("system.stopped");
    expect(all.filter((e) => e.type === "parcel.picked_up")).toHaveLength(1);
    expect(fromLedger(Events, ["events", "--type", "alarm"]).events.map((e) => e.type)).toEqual(["alarm.forced_open"]);
    const human = run(["events", "--limit", "3"]);
    expect(human.code).toBe(0);
    expect(human.err).toMatch(NOTE);
    expect(human.out).toMatch(/system\.stopped/);

    const rows = fromLedger(Compartments, ["compartments"]).compartments;
    expect(rows).toHaveLength(24);
    expect(rows.find((c) => c.id === "A10")).toMatchObject({ held: "inspection", door: "unknown", keypad: "110" });
    expect(rows.find((c) => c.id === "B03")).toMatchObject({ keypad: "203" });
    expect(rows.filter((c) => c.state === "occupied")).toEqual([expect.objectContaining({ parcelAgeMs: expect.any(Number), parcel: expect.any(String) })]);
    expect(run(["compartments"]).out.split("\n").find((l) => l.startsWith("A10"))).toMatch(/free\s+unknown\s+yes\s+inspection \d+s/);

    const stats = fromLedger(StatsResult, ["stats", "--days", "7"]);
    expect(stats.retrieval.parcels).toBe(2);
    expect(stats.security.forcedOpenAlarms).toBe(1);

    const self = fromLedger(SelftestResult, ["selftest"]);
    expect(self.ok).toBe(true);
    expect(self.checks.map((c) => c.name)).toEqual(["ledger schema", "ledger integrity", "ledger tables agree", "custody chain", "data directory", "ledger size", "disk space"]);
    expect(self.checks[0]!.detail).toBe(`version ${MIGRATIONS.length}`);
    expect(self.skipped?.map((c) => c.name)).toEqual(["devices", "door sensors read", "door polarity", "server link"]);
    const selfHuman = run(["selftest"]);
    expect(selfHuman.code).toBe(0);
    expect(selfHuman.out).toMatch(/^PASS {2}custody chain: \d+ events verify$/m);
    expect(selfHuman.out).toMatch(/^SKIP {2}devices: not run: needs the running lockerd/m);
    expect(selfHuman.out).toMatch(/selftest passed; 4 check\(s\) not run/);

    // What needs the daemon still says it is not running.
    for (const args of [["status"], ["open", "A01", "--reason", "testing"], ["events", "--follow"], ["sensors"]]) {
      const r = run(args);
      expect(r.code, args.join(" ")).toBe(3);
      expect(r.err).toMatch(/lockerd is not running \(nothing listening at \S+admin\.sock\)/);
      expect(r.err).not.toMatch(NOTE);
    }

    expect(await snapshot(d.dataDir, ["ledger.db"])).toEqual(before);
  });

  it("reads the ledger of a killed lockerd through the WAL it left, and lockerd starts on it afterwards", async () => {
    d = await startDaemon({ dir: d.dir });
    sim = await SimClient.connect(d.socket);
    const { parcel } = await courierDeposit(sim);
    const head = Events.parse(JSON.parse(run(["events", "--limit", "1", "--json"]).out)).events[0]!;
    d.child.kill("SIGKILL");
    await d.exited;
    sim.close();
    sim = undefined;
    expect(existsSync(join(d.dataDir, "ledger.db-wal")) && existsSync(join(d.dataDir, "ledger.db-shm"))).toBe(true);
    // -shm is SQLite's index of the WAL, rebuilt by whoever opens it after a crash: only its name must stay.
    const before = await snapshot(d.dataDir, ["ledger.db", "ledger.db-wal"]);

    const events = fromLedger(Events, ["events", "--limit", "5"]).events;
    expect(events.at(-1)).toEqual(head);
    expect(events.some((e) => e.type === "parcel.deposited" && e.parcel === parcel)).toBe(true);
    expect(fromLedger(Compartments, ["compartments"]).compartments.filter((c) => c.parcel === parcel)).toHaveLength(1);
    const self = fromLedger(SelftestResult, ["selftest"]);
    expect(self.checks.filter((c) => !c.ok && c.name !== "disk space")).toEqual([]);
    expect(self.checks.find((c) => c.name === "custody chain")!.detail).toBe(`${head.seq} events verify`);
    fromLedger(StatsResult, ["stats"]);

    expect(await snapshot(d.dataDir, ["ledger.db", "ledger.db-wal"])).toEqual(before);
    d = await startDaemon({ dir: d.dir });
    expect(run(["status"]).code).toBe(0);
    expect(await stopDaemon(d)).toBe(0);
  });

  it("says why a ledger cannot be read: missing, newer schema, permission", () => {
    const empty = tempDir();
    dirs.push(empty);
    const missing = run(["events"], { data: empty });
    expect(missing.code).toBe(3);
    expect(missing.err).toContain(`no ledger at ${join(empty, "ledger.db")}`);
    const gone = run(["compartments"], { data: join(empty, "nope") });
    expect(gone.code).toBe(3);
    expect(gone.err).toContain(`no data directory ${join(empty, "nope")}`);

    const copy = (into: string) => {
      mkdirSync(into, { mode: 0o700 });
      for (const f of ["ledger.db", "device.key", "bank.json"]) copyFileSync(join(d.dataDir, f), join(into, f));
      return into;
    };
    const newer = copy(join(empty, "newer"));
    const db = new Database(join(newer, "ledger.db"));
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    const r = run(["events"], { data: newer });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`ledger schema ${MIGRATIONS.length + 1}, newer than this lockerctl knows (${MIGRATIONS.length})`);

    const locked = copy(join(empty, "locked"));
    chmodSync(join(locked, "ledger.db"), 0o000);
    // Root reads anything: drop the capabilities that let it, as lockerctl.test.ts does for the socket.
    const asRoot = process.getuid?.() === 0;
    const denied = run(["events"], { data: locked, ...(asRoot ? { cmd: ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] } : {}) });
    expect(denied.code, denied.err).toBe(4);
    expect(denied.err).toContain(`cannot read ${join(locked, "ledger.db")}: permission denied`);
    expect(denied.err).toMatch(/Read it as root: sudo lockerctl --data \S+locked events/);
    expect(readdirSync(locked).sort()).toEqual(["bank.json", "device.key", "ledger.db"]);
  });

  it("per-command help, the overview, and did you mean", () => {
    const help = run(["events", "--help"], { data: null });
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^lockerctl events — /);
    expect(help.out).toMatch(/Usage: lockerctl .*events \[--since S\] \[--type T\] \[--limit N\] \[--follow\]/);
    expect(help.out).toMatch(/--type T\s+a type \(parcel\.picked_up\), a family \(alarm: every alarm\.\*\)/);
    expect(help.out).toMatch(/Example:?s?:?\n {2}lockerctl events /);
    expect(run(["help", "events"], { data: null }).out).toBe(help.out);
    for (const name of ["status", "compartments", "open", "disable", "enable", "relay-test", "sensors", "selftest", "sync", "stats", "watch"]) {
      const h = run(["help", name], { data: null });
      expect(h.code, name).toBe(0);
      expect(h.out).toMatch(new RegExp(`Usage: lockerctl .*${name}`));
      expect(h.out).toMatch(/Examples?:\n {2}(sudo )?lockerctl /);
    }
    expect(run(["help", "open"], { data: null }).out).toContain("Needs lockerd running.");

    const overview = run(["--help"], { data: null });
    expect(overview.code).toBe(0);
    expect(overview.out).toContain("lockerctl help COMMAND");
    expect(overview.out).toMatch(/Ledger \(lockerd not running\): <--data>\/ledger\.db, else \/var\/lib\/lockerd\/ledger\.db/);
    expect(run(["help"], { data: null }).out).toBe(overview.out);
    expect(Math.max(...overview.out.split("\n").map((l) => l.length))).toBeLessThanOrEqual(100);

    const typo = run(["compartment"], { data: null });
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('unknown command "compartment": did you mean "compartments"?');
    expect(run(["evnets"], { data: null }).err).toContain('did you mean "events"?');
    expect(run(["help", "stat"], { data: null }).err).toContain('did you mean "stats"?');
    const far = run(["frobnicate"], { data: null });
    expect(far.code).toBe(2);
    expect(far.err).not.toContain("did you mean");
    const option = run(["events", "--typ", "alarm"], { data: null });
    expect(option.code).toBe(2);
    expect(option.err).toContain("did you mean --type?");
    const stray = run(["status", "--days", "3"], { data: null });
    expect(stray.code).toBe(2);
    expect(stray.err).toContain("status does not take --days");
  });
});
