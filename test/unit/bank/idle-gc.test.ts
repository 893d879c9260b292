// The young generation collected once a pulse is under way (bank/idle-gc.ts): with node's
// --expose-gc (the daemon's flags) one minor collection follows, coalesced however many pulses
// asked in the same turn; without the flag nothing happens. In fresh node processes on the
// compiled module, the collections counted from V8's --trace-gc.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../helpers/daemon.js";

/** Scavenges V8 reports (--trace-gc) between two marks: five calls in one turn, then a pause. */
function scavenges(flags: string[]): number {
  const script = `
    const { collectWhenIdle } = await import(${JSON.stringify(join(ROOT, "dist/src/bank/idle-gc.js"))});
    await new Promise((r) => setTimeout(r, 20));
    console.log("<<mark>>");
    for (let i = 0; i < 5; i++) collectWhenIdle(); // five pulses in one turn
    await new Promise((r) => setTimeout(r, 50));
    console.log("<<end>>");
  `;
  const r = spawnSync(process.execPath, ["--trace-gc", "--max-semi-space-size=8", ...flags, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  const between = r.stdout.slice(r.stdout.indexOf("<<mark>>"), r.stdout.indexOf("<<end>>"));
  return between.split("\n").filter((l) => /Scavenge|Minor/.test(l)).length;
}

describe("collectWhenIdle", () => {
  it("with --expose-gc (the daemon's flags): one minor collection after the turn, however many asked", () => {
    expect(scavenges(["--expose-gc"])).toBe(1);
  });

  it("without --expose-gc: none", () => {
    expect(scavenges([])).toBe(0);
  });
});
