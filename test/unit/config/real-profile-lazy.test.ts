// The real profile's schemas (every driver's config schema) are built only for a config that names
// that profile: a simulated bank never pays for them at start, and a running bank cannot switch to
// the real profile by a reload (the profile is read at start). In fresh node processes on the
// compiled modules: vitest's workers preload the profile (test/helpers/setup.ts).
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../helpers/daemon.js";

const LOAD = join(ROOT, "dist/src/config/load.js");

/** Runs `body` as an ES module in a new node; its stdout as JSON. */
function fresh(body: string): unknown {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", body], { encoding: "utf8", cwd: ROOT, timeout: 30_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as unknown;
}

describe("the real profile's schemas, on demand", () => {
  it("the shipped daemon's start (the bundle's static imports) holds no driver config schema; they are a chunk loaded on demand", () => {
    const dir = join(ROOT, "dist/lockerd");
    const seen = new Set<string>();
    const walk = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/^import [^;]*?from "(\.[^"]+)";$/gm)) walk(join(dirname(file), m[1]!));
    };
    walk(join(dir, "lockerd.js"));
    const atStart = [...seen].map((f) => readFileSync(f, "utf8")).join("\n");
    // Text of the GPIO and RS485 schemas (their .describe()s):
    for (const marker of ["how GPIO is reached", "status read of each board every this often", "the board's own unlock time"]) {
      const where = readdirSync(join(dir, "chunks")).filter((f) => readFileSync(join(dir, "chunks", f), "utf8").includes(marker));
      expect(where.length, `${marker} is in the bundle`).toBeGreaterThan(0);
      expect(atStart.includes(marker), `${marker} is loaded at start`).toBe(false);
    }
  });

  it("a simulated and a real config each parse in a fresh process, the real one loading its schemas first", () => {
    const out = fresh(`
      const { loadConfigAtStart } = await import(${JSON.stringify(LOAD)});
      const sim = await loadConfigAtStart(${JSON.stringify(join(ROOT, "config.example.json"))});
      const real = await loadConfigAtStart(${JSON.stringify(join(ROOT, "hardware/profiles/c-kerong-rs485.json"))});
      process.stdout.write(JSON.stringify({ sim: sim.hardware.profile, real: real.hardware.profile }));
    `);
    expect(out).toEqual({ sim: "sim", real: "real" });
  });

  it("a reload that switches to the real profile is a config error naming the restart, never a crash", () => {
    const out = fresh(`
      const { parseConfig } = await import(${JSON.stringify(LOAD)});
      const { readFileSync } = await import("node:fs");
      const raw = JSON.parse(readFileSync(${JSON.stringify(join(ROOT, "hardware/profiles/c-kerong-rs485.json"))}, "utf8"));
      try { parseConfig(raw, "config.json"); process.stdout.write(JSON.stringify({ parsed: true })); }
      catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message, issues: e.context?.issues })); }
    `);
    expect(out).toMatchObject({ code: "config", issues: ['hardware.profile: hardware.profile "real" is read at start: restart lockerd to change to it'] });
  });
});
