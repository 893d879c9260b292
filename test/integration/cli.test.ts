// lockerd's command line: help, version, exit codes for bad arguments, bad config, a busy data dir.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { exampleConfig, MAIN, removeDir, ROOT, startDaemon, stopDaemon, tempDir } from "../helpers/daemon.js";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

function run(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: "utf8", timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("lockerd command line", () => {
  it("prints help and version", () => {
    const help = run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: lockerd \[--config FILE\] \[--data DIR\]/);
    const version = run(["--version"]);
    expect(version.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    expect(version.stdout.trim()).toBe(`lockerd ${pkg.version}`);
  });

  it("checks a config without starting (--check-config)", () => {
    const r = run(["--check-config"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK — hq\/bank-01, 24 compartments \(12 S, 8 M, 4 L\), hardware sim/);
  });

  it("exits 64 on an unknown argument", () => {
    const r = run(["--colour"]);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/Unknown option '--colour'/);
  });

  it("exits 78 naming every bad config field by its path", () => {
    const dir = tempDir();
    dirs.push(dir);
    const cfg = exampleConfig() as Record<string, any>;
    cfg.locks.pulseMs = 60_000;
    cfg.locks.maxConcurent = 2;
    cfg.bank.columns[1].compartments[3].size = "XS";
    delete cfg.device.site;
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify(cfg));
    const r = run(["--config", file, "--data", join(dir, "data")]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain("locks.pulseMs:");
    expect(r.stderr).toContain('locks: unknown key "maxConcurent"');
    expect(r.stderr).toContain("bank.columns[1].compartments[3].size:");
    expect(r.stderr).toContain("device.site:");
    expect(r.stderr.split("\n").filter((l) => l.startsWith("  - "))).toHaveLength(4);
  });

  it("exits 78 on a config that is not JSON, and on a missing one", () => {
    const dir = tempDir();
    dirs.push(dir);
    writeFileSync(join(dir, "x.json"), "{ version: 1,");
    expect(run(["--config", join(dir, "x.json"), "--data", join(dir, "d")]).code).toBe(78);
    const missing = run(["--config", join(dir, "nope.json"), "--data", join(dir, "d")]);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/cannot be read/);
  });

  it("refuses a data directory another lockerd is using (exit 75)", async () => {
    const d = await startDaemon();
    dirs.push(d.dir);
    try {
      const r = run(["--config", d.configFile, "--data", d.dataDir]);
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(/in use by lockerd pid \d+/);
    } finally {
      expect(await stopDaemon(d)).toBe(0);
    }
  });
});
