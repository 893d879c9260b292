// A damaged or missing data directory is never a silent fresh start: the compiled daemon refuses
// (exit 73, saying the way out) a directory that has held a bank when its ledger or key is missing,
// empty, damaged or not its own; --init starts a new bank deliberately, keeping the old files.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync, chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Ledger } from "../../src/ledger/ledger.js";
import { courierDeposit, MAIN, ROOT, removeDir, SimClient, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { requireTools } from "../helpers/tools.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

/** A bank that has lived: one parcel stored, stopped cleanly. */
async function livedBank(): Promise<{ d: Daemon; parcel: string; code: string }> {
  const d = await startDaemon();
  cleanups.push(() => removeDir(d.dir));
  const sim = await SimClient.connect(d.socket);
  const { parcel, code } = await courierDeposit(sim);
  sim.close();
  expect(await stopDaemon(d)).toBe(0);
  return { d, parcel, code };
}

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");

/** Overwrites the first leaf page of table `name` (its oldest rows) in a stopped bank's ledger. */
function damagePage(file: string, name: string): void {
  const db = new Database(file, { readonly: true });
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  const page = (db.prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path LIMIT 1").get(name) as { pageno: number }).pageno;
  db.close();
  const fd = openSync(file, "r+");
  writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (page - 1) * pageSize);
  closeSync(fd);
}

function start(d: Daemon, extra: string[] = [], prefix: string[] = []) {
  const [cmd, ...args] = [...prefix, process.execPath, MAIN, "--config", d.configFile, "--data", d.dataDir, ...extra];
  const r = spawnSync(cmd!, args, { encoding: "utf8", timeout: 15_000, env: { ...process.env } });
  return { code: r.status, stderr: r.stderr };
}

describe("a data directory that has held a bank", () => {
  it("refuses to start without its device.key (exit 73, the way out named), and makes no new key", async () => {
    const { d } = await livedBank();
    rmSync(join(d.dataDir, "device.key"));
    const r = start(d);
    expect(r.code).toBe(73);
    expect(r.stderr).toMatch(/device\.key is missing/);
    expect(r.stderr).toMatch(/restore .*backup.*--init/s);
    expect(existsSync(join(d.dataDir, "device.key"))).toBe(false);
  });

  it("refuses a missing or empty ledger.db instead of starting an empty bank", async () => {
    const { d } = await livedBank();
    for (const f of ["ledger.db-wal", "ledger.db-shm"]) rmSync(join(d.dataDir, f), { force: true });
    writeFileSync(join(d.dataDir, "ledger.db"), "");
    expect(start(d)).toMatchObject({ code: 73, stderr: expect.stringMatching(/ledger\.db is empty/) });
    rmSync(join(d.dataDir, "ledger.db"));
    expect(start(d)).toMatchObject({ code: 73, stderr: expect.stringMatching(/ledger\.db is missing/) });
    expect(existsSync(join(d.dataDir, "ledger.db"))).toBe(false);
  });

  it("refuses a device.key that is not this ledger's", async () => {
    const { d } = await livedBank();
    writeFileSync(join(d.dataDir, "device.key"), Buffer.alloc(32, 7), { mode: 0o600 });
    expect(start(d)).toMatchObject({ code: 73, stderr: expect.stringMatching(/device\.key does not belong to this ledger/) });
  });

  it("refuses a ledger damaged in a table checked before serving (the compartments)", async () => {
    const { d } = await livedBank();
    const file = join(d.dataDir, "ledger.db");
    damagePage(file, "compartments");
    const r = start(d);
    expect(r.code).toBe(73);
    expect(r.stderr).toMatch(/ledger\.db is damaged/);
  });

  it("serves on a ledger damaged in old history, and raises alarm.ledger_damaged from the whole-file check right after the start", async () => {
    const { d, code } = await livedBank();
    const file = join(d.dataDir, "ledger.db");
    // Years of history in small: 3,000 more events, through the ledger (the chain stays linked).
    const ledger = new Ledger(file, { now: Date.now });
    ledger.transact((tx) => {
      for (let i = 0; i < 3000; i++) tx.event({ type: "door.closed", compartment: "B12", data: { n: i } });
    });
    ledger.close();
    const before = Date.now();
    damagePage(file, "events");
    const d2 = await startDaemon({ dir: d.dir });
    cleanups.push(() => stopDaemon(d2));
    const sim = await SimClient.connect(d2.socket);
    cleanups.push(() => sim.close());
    // The bank serves: the parcel stored before opens with its code.
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor((e) => e.ev === "unlock");
    // The whole file's check (3 s after the start, a child process) finds the damage.
    await waitForOutput(d2, /alarm ledger_damaged: ledger\.db has damaged pages/, 20_000);
    const status = spawnSync(process.execPath, [CTL, "--socket", join(d2.dataDir, "admin.sock"), "status", "--json"], { encoding: "utf8", timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(status.status, `${status.stderr} ${d2.output().split("\n").filter((l) => /"level":50|fatal/i.test(l)).join("\n")}`).toBe(0);
    const alarms = (JSON.parse(status.stdout) as { alarms: { kind: string; since: number }[] }).alarms;
    expect(alarms.find((a) => a.kind === "ledger_damaged")?.since).toBeGreaterThanOrEqual(before);
  });

  it("a damaged page of codes (checked in the background): a code read from it opens nothing, the daemon serves on, the alarm follows", async () => {
    const { d, code } = await livedBank();
    damagePage(join(d.dataDir, "ledger.db"), "credentials");
    const d2 = await startDaemon({ dir: d.dir });
    cleanups.push(() => stopDaemon(d2));
    const sim = await SimClient.connect(d2.socket);
    cleanups.push(() => sim.close());
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor((e) => e.ev === "display" && !e.lines.some((l) => l.includes(code)), { from: m });
    await waitForOutput(d2, /alarm ledger_damaged: ledger\.db has damaged pages/, 20_000);
    expect(sim.since(m).filter((e) => e.ev === "unlock")).toEqual([]);
    expect(d2.child.exitCode).toBeNull();
    sim.send({ op: "state" }); // still answering
    await sim.waitFor((e) => e.ev === "state", { from: m });
  });

  it("refuses a ledger whose custody chain tail does not verify", async () => {
    const { d } = await livedBank();
    const db = new Database(join(d.dataDir, "ledger.db"));
    db.prepare("UPDATE events SET data = '{\"tampered\":true}' WHERE seq = (SELECT max(seq) - 1 FROM events)").run();
    db.close();
    const r = start(d);
    expect(r.code).toBe(73);
    expect(r.stderr).toMatch(/custody chain/);
  });

  it("--init starts a new bank deliberately and keeps the old files", async () => {
    const { d, parcel } = await livedBank();
    rmSync(join(d.dataDir, "device.key"));
    const dd = await startDaemonArgs(d, ["--init"]);
    expect(await stopDaemon(dd)).toBe(0);
    const kept = readdirSync(d.dataDir).filter((f) => f.startsWith("replaced-"));
    expect(kept).toHaveLength(1);
    expect(readdirSync(join(d.dataDir, kept[0]!)).sort()).toEqual(expect.arrayContaining(["bank.json", "ledger.db"]));
    const db = new Database(join(d.dataDir, "ledger.db"), { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM parcels WHERE id = ?").get(parcel)).toEqual({ n: 0 });
    db.close();
    expect(start(d, ["--help"]).code).toBe(0);
  });

  it("writes its files 0600 whatever the umask", async () => {
    const { d } = await livedBank();
    const dd = await startDaemonArgs(d, [], { umask: "000" });
    expect(await stopDaemon(dd)).toBe(0);
    for (const f of ["ledger.db", "device.key", "bank.json"]) expect((statSync(join(d.dataDir, f)).mode & 0o777).toString(8)).toBe("600");
  });

  it("an unwritable data directory exits 73 (not 70)", async () => {
    requireTools("setpriv"); // util-linux, from scripts/test-deps.sh
    const dir = tempDir();
    cleanups.push(() => removeDir(dir));
    const data = join(dir, "ro");
    mkdirSync(data, { mode: 0o500 });
    chmodSync(data, 0o500);
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, readFileSync(new URL("../../config.example.json", import.meta.url)));
    // Root ignores file modes: drop the capabilities that let it, as a service user would run.
    const r = spawnSync("setpriv", ["--bounding-set", "-dac_override,-dac_read_search", process.execPath, MAIN, "--config", cfg, "--data", data], { encoding: "utf8", timeout: 15_000 });
    expect(r.status).toBe(73);
    expect(r.stderr).toMatch(/data directory|cannot/i);
  });

  it("a data directory from before the marker (ledger and key, no bank.json) is adopted", async () => {
    const { d } = await livedBank();
    rmSync(join(d.dataDir, "bank.json"));
    const dd = await startDaemonArgs(d, []);
    expect(await stopDaemon(dd)).toBe(0);
    expect(JSON.parse(readFileSync(join(d.dataDir, "bank.json"), "utf8"))).toMatchObject({ bank: expect.any(String), keyFingerprint: expect.any(String) });
  });
});

/** startDaemon on an existing daemon's directory and config, with extra arguments. */
async function startDaemonArgs(d: Daemon, extra: string[], opts: { umask?: string } = {}): Promise<Daemon> {
  const { spawn } = await import("node:child_process");
  const child = opts.umask
    ? spawn("sh", ["-c", `umask ${opts.umask} && exec "$0" "$@"`, process.execPath, MAIN, "--config", d.configFile, "--data", d.dataDir, ...extra], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, [MAIN, "--config", d.configFile, "--data", d.dataDir, ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (out += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready:\n${out}`)), 15_000);
    child.stdout.on("data", () => out.includes('"ready') && (clearTimeout(timer), resolve()));
    void exited.then((code) => (clearTimeout(timer), reject(new Error(`exited ${code}:\n${out}`))));
  });
  return { ...d, child, output: () => out, exited };
}
