// Config layout changes on the compiled daemon: applied or refused, never ignored. At start (two
// empty compartments removed, a free one resized, one holding a parcel refused with exit 78), on
// SIGHUP (a safe change applied live, an unsafe one refused while the daemon runs on), and what
// `lockerd --check-config --data` says of them beforehand.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { courierDeposit, exampleConfig, MAIN, ROOT, removeDir, SimClient, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Patch = (cfg: Record<string, any>) => void;
const CTL = join(ROOT, "dist/lockerd/lockerctl.js");

/** A bank directory whose daemon the test starts and stops as it needs. */
function bankDir(): string {
  const dir = tempDir("lockerd-layout-");
  cleanups.push(() => removeDir(dir));
  return dir;
}

async function start(dir: string, patch?: Patch): Promise<{ d: Daemon; sim: SimClient }> {
  const d = await startDaemon({ dir, ...(patch ? { patch } : {}) });
  const sim = await SimClient.connect(d.socket);
  cleanups.push(async () => {
    sim.close();
    await stopDaemon(d, "SIGKILL");
  });
  return { d, sim };
}

async function stop(b: { d: Daemon; sim: SimClient }): Promise<void> {
  b.sim.close();
  expect(await stopDaemon(b.d)).toBe(0);
}

/** The config file startDaemon would write for this patch (the same test defaults), written over the daemon's. */
function rewriteConfig(d: Daemon, patch: Patch): void {
  const cfg = exampleConfig() as Record<string, any>;
  cfg.log = { level: "info" };
  cfg.terminal = { ...cfg.terminal, messageMs: 500 };
  cfg.locks = { ...cfg.locks, pulseMs: 100, openVerifyMs: 400 };
  patch(cfg);
  writeFileSync(d.configFile, JSON.stringify(cfg));
}

function run(args: string[]) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the ledger file says (read after the daemon stopped, or beside it). */
function ledgerRows(dataDir: string) {
  const db = new Database(join(dataDir, "ledger.db"), { readonly: true });
  try {
    return {
      compartments: db.prepare("SELECT id, position, size, refrigerated, accessible, state, parcel_id, retired_at FROM compartments ORDER BY id").all() as {
        id: string;
        size: string;
        state: string;
        parcel_id: string | null;
        retired_at: number | null;
      }[],
      events: (db.prepare("SELECT seq, type, compartment, actor, data FROM events ORDER BY seq").all() as { seq: number; type: string; compartment: string | null; actor: string | null; data: string }[]).map(
        (e) => ({ ...e, data: JSON.parse(e.data) as Record<string, unknown> }),
      ),
      meta: (db.prepare("SELECT value FROM meta WHERE key = 'layout.applied'").get() as { value: string } | undefined)?.value,
    };
  } finally {
    db.close();
  }
}

const withoutTail = (n: number): Patch => (cfg) => {
  cfg.bank.columns[1].compartments.splice(-n);
};
/** The config's compartment spec for an id like A05. */
const specOf = (cfg: Record<string, any>, id: string): Record<string, unknown> => cfg.bank.columns[id.charCodeAt(0) - 65].compartments[Number(id.slice(1)) - 1];

describe("layout changes at start", () => {
  it("retires two empty compartments removed from the config: the daemon starts, they are gone from the bank, kept in the ledger, with events", async () => {
    const dir = bankDir();
    await stop(await start(dir));
    const b = await start(dir, withoutTail(2)); // B11 and B12; once this exited 70 ("no compartment B11")
    const state = await b.sim.state();
    expect(state).toHaveLength(22);
    expect(state.map((c) => c.id)).not.toContain("B11");
    b.sim.send({ op: "door", compartment: "B12", state: "open" });
    await b.sim.waitFor((e) => e.ev === "error" && /no compartment B12/.test(e.message));
    await stop(b);

    const l = ledgerRows(b.d.dataDir);
    expect(l.compartments.filter((c) => c.retired_at !== null).map((c) => c.id)).toEqual(["B11", "B12"]);
    const retired = l.events.filter((e) => e.type === "compartment.retired");
    expect(retired.map((e) => [e.compartment, e.actor, e.data.size])).toEqual([
      ["B11", "config", "L"],
      ["B12", "config", "L"],
    ]);
    // Started again on the same config: nothing more to do, no crash.
    await stop(await start(dir, withoutTail(2)));
    expect(ledgerRows(b.d.dataDir).events.filter((e) => e.type.startsWith("compartment.retired"))).toHaveLength(2);
  });

  it("resizes a free compartment the config changed (A02 S → M)", async () => {
    const dir = bankDir();
    await stop(await start(dir));
    const b = await start(dir, (cfg) => (specOf(cfg, "A02").size = "M"));
    expect((await b.sim.state()).find((c) => c.id === "A02")).toMatchObject({ size: "M" });
    await stop(b);
    const changed = ledgerRows(b.d.dataDir).events.filter((e) => e.type === "compartment.changed");
    expect(changed).toEqual([expect.objectContaining({ compartment: "A02", actor: "config", data: { from: { size: "S" }, to: { size: "M" } } })]);
  });

  it("refuses to resize or remove a compartment holding a parcel: exit 78 naming both, the ledger as it was", async () => {
    const dir = bankDir();
    const first = await start(dir);
    const { compartment, parcel } = await courierDeposit(first.sim);
    await stop(first);
    const before = ledgerRows(first.d.dataDir);
    const column = compartment.charCodeAt(0) - 65;
    const row = Number(compartment.slice(1));

    const attempts: Patch[] = [
      (cfg) => (specOf(cfg, compartment).size = "XL"), // resize it
      (cfg) => cfg.bank.columns[column].compartments.splice(row - 1), // remove it and the empty ones after it
    ];
    for (const patch of attempts) {
      rewriteConfig(first.d, patch);
      const r = run(["--config", first.d.configFile, "--data", first.d.dataDir]);
      expect(r.code).toBe(78);
      expect(r.stderr).toContain(`${compartment} holds parcel ${parcel}`);
      expect(r.stderr).toMatch(/nothing applied/);
      expect(ledgerRows(first.d.dataDir)).toEqual(before);
    }
  });
});

describe("SIGHUP", () => {
  it("applies a safe layout change live, refuses an unsafe one and runs on, and names what needs a restart", async () => {
    const dir = bankDir();
    const b = await start(dir);
    const { compartment: full, parcel } = await courierDeposit(b.sim);
    const free = ["A03", "A04", "A05", "A06"].find((id) => id !== full)!;

    // Safe: a free compartment resized, the last (empty) one removed; and a change that needs a restart.
    rewriteConfig(b.d, (cfg) => {
      specOf(cfg, free).size = "M";
      withoutTail(1)(cfg);
      cfg.locks.pulseMs = 150;
    });
    b.d.child.kill("SIGHUP");
    await waitForOutput(b.d, /config reloaded: layout applied: 0 added, 1 retired, 1 changed/);
    await waitForOutput(b.d, /take effect only after a restart: locks\.pulseMs/);
    const live = await b.sim.state();
    expect(live.map((c) => c.id)).not.toContain("B12");
    expect(live.find((c) => c.id === free)).toMatchObject({ size: "M" });
    let m = b.sim.mark();
    b.sim.send({ op: "door", compartment: "B12", state: "open" });
    await b.sim.waitFor((e) => e.ev === "error" && /no compartment B12/.test(e.message), { from: m });

    // Unsafe: resize the compartment holding the parcel (with the safe change kept): refused, nothing applied, still running.
    rewriteConfig(b.d, (cfg) => {
      specOf(cfg, free).size = "M";
      withoutTail(1)(cfg);
      specOf(cfg, full).size = "XL";
      specOf(cfg, "A12").size = "XL";
    });
    b.d.child.kill("SIGHUP");
    await waitForOutput(b.d, new RegExp(`layout change refused, nothing applied: ${full} holds parcel ${parcel}.*still running on the old layout`));
    const after = await b.sim.state();
    expect(after.find((c) => c.id === full)).toMatchObject({ size: "S", parcel });
    expect(after.find((c) => c.id === "A12")).toMatchObject({ size: "L" });
    expect(b.d.child.exitCode).toBeNull();

    // Still serving on the layout it had: a door edge is heard and recorded.
    m = b.sim.mark();
    b.sim.send({ op: "door", compartment: free, state: "open" });
    await b.sim.waitFor((e) => e.ev === "door" && e.compartment === free && e.state === "open", { from: m });
    b.sim.send({ op: "door", compartment: free, state: "closed" });
    await stop(b);

    const l = ledgerRows(b.d.dataDir);
    expect(l.events.filter((e) => e.type.startsWith("compartment.") && e.actor === "config").map((e) => `${e.type} ${e.compartment}`)).toEqual(
      expect.arrayContaining(["compartment.retired B12", `compartment.changed ${free}`]),
    );
    expect(l.compartments.find((c) => c.id === full)).toMatchObject({ size: "S", parcel_id: parcel, retired_at: null });
    expect(l.compartments.find((c) => c.id === "A12")).toMatchObject({ size: "L" });
  });

  it("logs a config that no longer parses and keeps running", async () => {
    const dir = bankDir();
    const b = await start(dir);
    writeFileSync(b.d.configFile, "{ not json");
    b.d.child.kill("SIGHUP");
    await waitForOutput(b.d, /SIGHUP: the config is not valid: nothing applied/);
    expect((await b.sim.state()).length).toBe(24);
    await stop(b);
  });
});

describe("lockerctl reload", () => {
  it("does what SIGHUP does and says so: applied (exit 0), refused naming the parcel (exit 1), an invalid file (exit 1)", async () => {
    const dir = bankDir();
    const b = await start(dir);
    const { compartment: full, parcel } = await courierDeposit(b.sim);
    const ctl = (args: string[]) => {
      const r = spawnSync(process.execPath, [CTL, "--data", b.d.dataDir, ...args], { encoding: "utf8", timeout: 15_000, env: { ...process.env, NO_COLOR: "1" } });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    rewriteConfig(b.d, withoutTail(1));
    const ok = ctl(["reload"]);
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/^layout applied:\n {2}retired +B12/);
    expect((await b.sim.state()).map((c) => c.id)).not.toContain("B12");

    rewriteConfig(b.d, (cfg) => {
      withoutTail(1)(cfg);
      specOf(cfg, full).size = "XL";
    });
    const refused = ctl(["reload", "--json"]);
    expect(refused.code).toBe(1);
    const r = JSON.parse(refused.out) as { layout: string; plan: string[] };
    expect(r.layout).toBe("refused");
    expect(r.plan.join("\n")).toMatch(new RegExp(`refused +${full}: .*\\[parcel ${parcel}\\]`));
    expect((await b.sim.state()).find((c) => c.id === full)).toMatchObject({ size: "S", parcel });

    writeFileSync(b.d.configFile, "{ not json");
    const bad = ctl(["reload"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/the config is not valid: nothing applied, running on as before/);
    expect(b.d.child.exitCode).toBeNull();
    await stop(b);
  });
});

describe("lockerd --check-config --data", () => {
  it("prints the plan against the real ledger, read only, beside a running daemon and without one", async () => {
    const dir = bankDir();
    const b = await start(dir);
    const { compartment: full, parcel } = await courierDeposit(b.sim);
    const check = (patch: Patch, data = true) => {
      rewriteConfig(b.d, patch);
      return run(["--check-config", "--config", b.d.configFile, ...(data ? ["--data", b.d.dataDir] : [])]);
    };

    // Safe: a free one resized, two empty ones removed, one added (a third column).
    const free = ["A03", "A04", "A05", "A06"].find((id) => id !== full)!;
    const safe: Patch = (cfg) => {
      specOf(cfg, free).size = "M";
      withoutTail(2)(cfg);
      cfg.bank.columns.push({ id: "C", compartments: [{ size: "XL", lock: 40 }] });
    };
    let r = check(safe);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`changed +${free}: size S → M`));
    expect(r.stdout).toMatch(/retired +B11 \(was size L/);
    expect(r.stdout).toMatch(/retired +B12/);
    expect(r.stdout).toMatch(/added +C01: size XL, refrigerated false, accessible false, lock 40/);
    expect(r.stdout).toMatch(/C01 {2}lock 40, door input 40/);
    expect(r.stdout).toMatch(/result: OK — the plan is appliable/);

    // Unsafe: the parcel's compartment resized.
    r = check((cfg) => {
      safe(cfg);
      specOf(cfg, full).size = "L";
    });
    expect(r.code).toBe(78);
    expect(r.stdout).toMatch(new RegExp(`refused +${full}: ${full} holds parcel ${parcel} \\(stored\\): size S → L cannot be applied \\[parcel ${parcel}\\]`));
    expect(r.stdout).toMatch(/result: REFUSED/);

    // Without --data: the config alone, and it says so.
    r = check(safe, false);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/layout plan: not computed \(no --data/);

    // Nothing of that was applied to the running bank, nor written.
    expect((await b.sim.state()).length).toBe(24);
    await stop(b);
    const files = readdirSync(b.d.dataDir).sort();
    const ledger = statSync(join(b.d.dataDir, "ledger.db"));
    r = check(safe);
    expect(r.code).toBe(0);
    expect(readdirSync(b.d.dataDir).sort()).toEqual(files); // no -wal / -shm made by a read
    expect(statSync(join(b.d.dataDir, "ledger.db")).mtimeMs).toBe(ledger.mtimeMs);
    expect(ledgerRows(b.d.dataDir).compartments.every((c) => c.retired_at === null)).toBe(true);

    // What a start would refuse for the data directory's sake, it says too.
    writeFileSync(join(b.d.dataDir, "device.key"), randomBytes(32), { mode: 0o600 });
    r = check(safe);
    expect(r.code).toBe(78);
    expect(r.stdout).toMatch(/FAIL +.*device\.key does not belong to this ledger: a start refuses it \(exit 73\)/);
  });

  it("fails a referenced file it cannot read, and reports a refrigerated compartment without a sensor", () => {
    const dir = bankDir();
    const cfg = exampleConfig() as Record<string, any>;
    cfg.sync = { ...cfg.sync, enabled: true, passwordFile: join(dir, "nope.txt") };
    delete cfg.bank.columns[1].compartments[0].temperature; // B01 refrigerated, now unwatched
    const file = join(dir, "cfg.json");
    writeFileSync(file, JSON.stringify(cfg));
    const r = run(["--check-config", "--config", file]);
    expect(r.code).toBe(78);
    expect(r.stdout).toMatch(/NOT OK/);
    expect(r.stdout).toMatch(/FAIL +sync\.passwordFile: cannot read .*nope\.txt: ENOENT/);
    expect(r.stdout).toMatch(/warn +B01 is refrigerated but has no temperature sensor/);
  });
});
