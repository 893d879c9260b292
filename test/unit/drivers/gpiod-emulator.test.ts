// The fake gpiod tools (scripts/gpiod-emulator/) against Debian's real ones, where the real ones can
// run here: a machine without GPIO chips. Same arguments, same stdout, stderr and exit code, in the
// dialect of the installed package (Bookworm: 1.6.3; Trixie: 2.1.x). Everything a tool does while
// it holds a line needs a chip, and is checked on paper (hardware/gpio-i2c.md).
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeGpiod, type FakeGpiod } from "../../helpers/gpiod.js";
import { requireTools } from "../../helpers/tools.js";

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.stdin.end(); // --mode=wait and -i read stdin: EOF
    const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code });
    });
  });
}

const V1_CASES: readonly string[][] = [
  ["gpiodetect"],
  ["gpiodetect", "-x"],
  ["gpioget"],
  ["gpioget", "gpiochip0"],
  ["gpioget", "gpiochip0", "17"],
  ["gpioget", "gpiochip0", "x"],
  ["gpioget", "-B"],
  ["gpioset"],
  ["gpioset", "gpiochip0"],
  ["gpioset", "gpiochip0", "17"],
  ["gpioset", "gpiochip0", "17=2"],
  ["gpioset", "gpiochip0", "17=1"],
  ["gpioset", "--mode=wait", "gpiochip0", "17=1"],
  ["gpioset", "--mode=bogus", "gpiochip0", "17=1"],
  ["gpioset", "-m"],
  ["gpioset", "-i", "gpiochip0", "1=1"],
  ["gpioset", "-c", "gpiochip0", "1=1"],
  ["gpioset", "--interactive"],
  ["gpioset", "-s", "1", "gpiochip0", "1=1"],
  ["gpioset", "--mode=exit", "-b", "gpiochip0", "1=1"],
  ["gpioset", "pinctrl-bcm2711", "4=1"],
  ["gpioset", "/dev/gpiochip4", "4=1"],
  ["gpioset", "4", "4=1"],
  ["gpiomon"],
  ["gpiomon", "gpiochip0"],
  ["gpiomon", "gpiochip0", "x"],
  ["gpiomon", "-b", "-F", "%o %e", "gpiochip0", "17"],
  ["gpiomon", "-n", "x", "gpiochip0", "1"],
];

const V2_CASES: readonly string[][] = [
  ["gpiodetect"],
  ["gpiodetect", "-x"],
  ["gpiodetect", "gpiochip9"],
  ["gpioget"],
  ["gpioget", "-c", "gpiochip0", "17"],
  ["gpioget", "17"],
  ["gpioset"],
  ["gpioset", "-x"],
  ["gpioset", "-c", "gpiochip0", "17=1"],
  ["gpioset", "-c", "gpiochip0", "17=x"],
  ["gpioset", "-c", "gpiochip0", "17"],
  ["gpioset", "17=1"],
  ["gpiomon"],
  ["gpiomon", "-c", "gpiochip0", "17"],
  ["gpiomon", "-e", "up", "-c", "gpiochip0", "17"],
];

let installed: string;
let f: FakeGpiod;

beforeAll(async () => {
  requireTools("gpiodetect", "gpioget", "gpioset", "gpiomon");
  installed = /v(\d+\.\d+(?:\.\d+)?)/.exec((await run("gpioset", ["--version"], process.env)).stdout)?.[1] ?? "?";
  f = await fakeGpiod({ version: installed, chips: [] });
});

afterAll(async () => {
  await f?.close();
});

describe("the fake gpiod tools", () => {
  it("print what Debian's tools print, and exit as they do, where there is no GPIO chip", async (ctx) => {
    const chips = readdirSync("/dev").filter((n) => /^gpiochip\d+$/.test(n));
    if (chips.length) {
      process.stderr.write(`gpiod-emulator: skipped (this machine has ${chips.join(", ")}: the real tools would use them)\n`);
      ctx.skip();
    }
    const cases = installed.startsWith("1.") ? V1_CASES : V2_CASES;
    const differ: string[] = [];
    for (const c of cases) {
      const [tool, ...args] = c as [string, ...string[]];
      const real = await run(tool, args, process.env);
      const fake = await run(tool, args, f.env);
      if (JSON.stringify(real) !== JSON.stringify(fake)) differ.push(`${c.join(" ")}\n  real ${JSON.stringify(real)}\n  fake ${JSON.stringify(fake)}`);
    }
    expect(differ, `gpiod ${installed}`).toEqual([]);
  });
});
