// The compiled lockerd on a host without /sys/class/gpio (Trixie), its GPIO through fake gpiod tools
// on PATH (test/helpers/gpiod.ts): relays and doors that cannot start stop it with exit 78 and a
// message naming them; a buzzer that cannot start is skipped and the bank runs, relays held off
// until lockerd stops, and released off after.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { exampleConfig, MAIN, removeDir, tempDir } from "../../helpers/daemon.js";
import { fakeGpiod, PI4_CHARDEV_CHIPS, until, type FakeGpiod } from "../../helpers/gpiod.js";

let dirs: string[] = [];
let fakes: FakeGpiod[] = [];

afterEach(async () => {
  for (const f of fakes) await f.close();
  for (const d of dirs) removeDir(d);
  dirs = [];
  fakes = [];
});

/** A two-compartment bank: relays on GPIO 17/27, door switches on 5/6, a buzzer on 18. */
function config(dir: string, buzzerLabel?: string): string {
  const cfg = exampleConfig() as Record<string, any>;
  const sysfsRoot = dir; // no class/gpio in it: backend "auto" is the character device
  cfg.log = { level: "info" };
  delete cfg.seed; // people are seeded only into a simulated bank
  cfg.bank = { columns: [{ id: "A", compartments: [{ size: "S" }, { size: "M" }] }] };
  cfg.hardware = {
    profile: "real",
    boards: [
      { type: "gpio-relays", sysfsRoot, relays: [{ channel: 0, pin: 17 }, { channel: 1, pin: 27 }] },
      { type: "gpio-doors", sysfsRoot, doors: [{ channel: 0, pin: 5 }, { channel: 1, pin: 6 }] },
    ],
    buzzer: { type: "gpio-buzzer", sysfsRoot, ...(buzzerLabel ? { chipLabel: buzzerLabel } : {}), buzzer: { pin: 18 } },
  };
  const file = join(dir, "config.json");
  writeFileSync(file, JSON.stringify(cfg));
  return file;
}

function run(f: FakeGpiod, dir: string, configFile: string) {
  const child = spawn(process.execPath, [MAIN, "--config", configFile, "--data", join(dir, "data")], { env: f.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

describe("lockerd on a host without sysfs GPIO", () => {
  it("exits 78 naming the relays when the header's chip is not there", async () => {
    const f = await fakeGpiod({ version: "2.1.3", chips: [{ name: "gpiochip0", label: "gpio-mockup-A", ngpio: 8 }] });
    fakes.push(f);
    const dir = tempDir("lockerd-chardev-78-");
    dirs.push(dir);
    const d = run(f, dir, config(dir));
    expect(await d.exited).toBe(78);
    expect(d.output()).toContain("lockerd: gpio relays (GPIO 17,27): no Raspberry Pi pin controller");
    expect(d.output()).toContain("gpiochip0 [gpio-mockup-A] (8 lines)");
    expect(f.kernel.processes()).toEqual([]);
  });

  it("runs without a buzzer that cannot start, holding the relays off, and releases them off at stop", async () => {
    const f = await fakeGpiod({ version: "2.1.3", chips: PI4_CHARDEV_CHIPS, releasedOutputs: "persist" });
    fakes.push(f);
    const dir = tempDir("lockerd-chardev-run-");
    dirs.push(dir);
    const d = run(f, dir, config(dir, "no-such-chip"));
    await until(() => d.output().includes('"ready'), "lockerd ready", 15_000);
    expect(d.output()).toContain("gpio buzzer (GPIO 18) cannot start and is skipped (optional)");
    expect(f.kernel.holder("gpiochip0", 17)).toMatchObject({ tool: "gpioset", consumer: "lockerd" });
    expect(f.kernel.holder("gpiochip0", 5)).toMatchObject({ tool: "gpiomon", edge: "both" });
    expect([f.kernel.level("gpiochip0", 17), f.kernel.level("gpiochip0", 27)]).toEqual([0, 0]);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    await until(() => f.kernel.processes().length === 0, "every helper gone");
    expect(f.kernel.holder("gpiochip0", 17)).toBeNull();
    expect([f.kernel.level("gpiochip0", 17), f.kernel.level("gpiochip0", 27)]).toEqual([0, 0]);
  });
});
