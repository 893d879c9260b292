// A disk that works but stalls (a dying SD card): every fsync of the compiled daemon waits 80 ms
// (test/fixtures/slow-fsync.c, loaded with LD_PRELOAD under SQLite's own calls). The daemon says
// "slow disk" with the write's length at once, then not again within the minute however many
// more writes are slow; and the bank still works, only slower.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SLOW_WRITE_MS } from "../../src/ledger/ledger.js";
import { ROOT, removeDir, startDaemon, stopDaemon, tempDir, waitForOutput, type Daemon } from "../helpers/daemon.js";
import { requireTools } from "../helpers/tools.js";

const LOCKERCTL = join(ROOT, "dist/lockerd/lockerctl.js");

describe("a disk whose every fsync stalls", () => {
  let dir: string;
  let d: Daemon;

  beforeAll(async () => {
    requireTools("cc");
    dir = tempDir();
    const shim = join(dir, "slow-fsync.so");
    execFileSync("cc", ["-shared", "-fPIC", "-O2", "-o", shim, join(ROOT, "test/fixtures/slow-fsync.c"), "-ldl"]);
    d = await startDaemon({ dir, env: { LD_PRELOAD: shim, SLOW_FSYNC_MS: "80" } });
  });

  afterAll(async () => {
    if (d) await stopDaemon(d);
    if (dir) removeDir(dir);
  });

  it("is reported once with the write's length and the count, not again within the minute; the bank still writes", async () => {
    await waitForOutput(d, /slow disk/, 10_000);
    const reports = () =>
      d
        .output()
        .split("\n")
        .filter((l) => l.includes("slow disk"))
        .map((l) => JSON.parse(l) as { level: number; ms: number; slowWrites: number; worstMs: number; msg: string });
    const [first] = reports();
    expect(first).toMatchObject({ level: 40, slowWrites: 1 });
    expect(first!.ms).toBeGreaterThanOrEqual(80);
    expect(first!.ms).toBeGreaterThanOrEqual(SLOW_WRITE_MS);
    expect(first!.msg).toMatch(/^slow disk: a ledger write took \d+ ms \(1 over 50 ms since the last report\); doors wait for these writes$/);
    // More writes through lockerctl, each as slow: still one line.
    for (const id of ["p-1", "p-2", "p-3"]) {
      const r = spawnSync(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "people", "add", id, "--name", id, "--roles", "recipient"], { encoding: "utf8", timeout: 15_000 });
      expect(r.status, r.stderr).toBe(0);
    }
    const list = spawnSync(process.execPath, [LOCKERCTL, "--socket", join(d.dataDir, "admin.sock"), "--json", "people", "list"], { encoding: "utf8", timeout: 15_000 });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain("p-3");
    expect(reports()).toHaveLength(1);
  });
});
