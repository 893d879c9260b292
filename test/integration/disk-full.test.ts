// Disk full is a state, not a crash: the compiled daemon on a small tmpfs whose space a filler file
// takes away. It warns early (alarm.disk_low under the floor), stays up when the disk is full (the
// WAL write-back used to be an uncaught exception, exit 70, at every start), keeps every door shut
// that has no authorization on record, says "disk full" in status and selftest, starts again on a
// full disk, and resumes by itself when space returns.
// Needs mount(2) (root, as CI runs); where mount is not allowed the suite is skipped and says so.
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { courierDeposit, displayHas, ROOT, SimClient, startDaemon, stopDaemon, tempDir, removeDir } from "../helpers/daemon.js";
import { slow } from "../helpers/slow.js";

const CTL = join(ROOT, "dist/lockerd/lockerctl.js");
const base = tempDir();
const mnt = join(base, "mnt");
let mounted = false;
beforeAll(() => {
  mkdirSync(mnt);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", mnt], { stdio: "ignore" });
    mounted = true;
  } catch {
    process.stderr.write("disk-full: mount(2) not allowed here: the tmpfs harness is skipped\n");
  }
});
afterAll(() => {
  if (mounted) spawnSync("umount", ["-l", mnt]);
  removeDir(base);
});

const ctl = (dataDir: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [CTL, "--data", dataDir, "--json", ...args], { encoding: "utf8" });
  return JSON.parse(r.stdout) as Record<string, any>;
};

/** Take the tmpfs's space until `leaveBytes` remain (0: until ENOSPC). */
function fill(file: string, leaveBytes: number): void {
  const fd = openSync(file, "a");
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(mnt);
      const free = bavail * bsize;
      if (free <= leaveBytes) break;
      writeSync(fd, Buffer.alloc(Math.min(64 * 1024, free - leaveBytes), 1));
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
}

describe("a full disk under the data directory", () => {
  it("warns early, stays up with every door shut, restarts on a full disk, and resumes when space returns", { timeout: slow(60_000) }, async (ctx) => {
    // mount(2) is a privilege, not a package: where it is missing the test says so and is skipped.
    if (!mounted) return ctx.skip(process.getuid?.() === 0 ? "mount(2) is not allowed here (a container without CAP_SYS_ADMIN?)" : "needs root to mount a tmpfs: run the suite as root, as CI does");
    const dir = join(mnt, "bank");
    mkdirSync(dir);
    const patch = (cfg: Record<string, any>) => (cfg.storage = { minFreeMb: 2, checkS: 1 });
    let d = await startDaemon({ dir, patch });
    let sim = await SimClient.connect(d.socket);
    const { compartment, code } = await courierDeposit(sim);
    const filler = join(mnt, "filler");

    // Under the floor: an alarm while there is still room to write it.
    fill(filler, 1024 * 1024);
    for (let i = 0; i < 50 && !ctl(d.dataDir, "events", "--type", "alarm.disk_low").events.length; i++) await new Promise((r) => setTimeout(r, 100));
    expect(ctl(d.dataDir, "events", "--type", "alarm.disk_low").events).toHaveLength(1);

    // Full: the daemon stays up; a valid code opens nothing and the keypad says why. A reader
    // holds a snapshot of the ledger meanwhile (as lockerctl or a backup may): SQLite cannot start
    // its WAL over while it is held, so every commit needs new space and none fits. Without it, a
    // write-back that succeeds lets the WAL be reused, and commits fit again for a while (a door
    // may then rightly open, its authorization on disk): under emulation the state went full, then
    // ok, and the test's code opened its door.
    sim.send({ op: "board", state: "down" }); // fresh frames in the WAL, so that the reader's snapshot holds them
    sim.send({ op: "board", state: "ok" });
    await sim.state();
    const reader = new Database(join(d.dataDir, "ledger.db"), { readonly: true });
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM meta").get();
    fill(filler, 0);
    // The bank is made to write (the simulated lock board down and up: device.fault and
    // device.recovered) until it says the disk is full.
    const deadline = Date.now() + slow(30_000);
    while (ctl(d.dataDir, "status").storage?.state !== "full" && Date.now() < deadline) {
      for (let k = 0; k < 10; k++) {
        sim.send({ op: "board", state: "down" });
        sim.send({ op: "board", state: "ok" });
      }
      await sim.state();
    }
    expect(d.child.exitCode).toBeNull();
    expect(ctl(d.dataDir, "status").storage?.state).toBe("full");
    const m = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor(displayHas("storage full"), { from: m });
    expect(sim.since(m).filter((e) => e.ev === "unlock")).toEqual([]);
    const status = ctl(d.dataDir, "status");
    expect(status.storage).toMatchObject({ state: "full", path: d.dataDir });
    expect(typeof status.storage.freeBytes).toBe("number");
    expect(status.alarms.map((a: { kind: string }) => a.kind)).toContain("disk_full");
    const selftest = spawnSync(process.execPath, [CTL, "--data", d.dataDir, "selftest"], { encoding: "utf8" });
    expect(selftest.status).toBe(5);
    expect(selftest.stdout).toMatch(/disk space: disk full/);

    // A restart with the disk still full comes up (no restart loop) and still refuses.
    sim.close();
    expect(await stopDaemon(d, "SIGTERM")).toBe(0);
    d = await startDaemon({ dir, patch });
    sim = await SimClient.connect(d.socket);
    const m2 = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    await sim.waitFor(displayHas("storage full"), { from: m2 });
    expect(sim.since(m2).filter((e) => e.ev === "unlock")).toEqual([]);

    // Space returns (and the reader lets go): the bank resumes by itself, and the same code opens its door.
    reader.exec("ROLLBACK");
    reader.close();
    rmSync(filler);
    for (let i = 0; i < 50 && ctl(d.dataDir, "status").storage?.state === "full"; i++) await new Promise((r) => setTimeout(r, 100));
    expect(ctl(d.dataDir, "status").storage.state).not.toBe("full");
    expect(ctl(d.dataDir, "events", "--type", "storage.recovered").events.length).toBeGreaterThanOrEqual(1);
    const m3 = sim.mark();
    sim.send({ op: "keys", keys: `${code}#` });
    const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m3 });
    expect(unlock.compartment).toBe(compartment);
    sim.close();
    expect(await stopDaemon(d)).toBe(0);
  });
});
