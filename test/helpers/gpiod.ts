// Fake gpiod tools on PATH over a fake GPIO character device (scripts/gpiod-emulator/): the chardev
// GPIO driver runs against real child processes, real pipes and the tools' real output formats.
// The tools are the built emulator (dist/): `npm test` builds first; a stale build is refused.
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeGpioKernel, type FakeChipSpec } from "../../scripts/gpiod-emulator/kernel.js";
import type { GpiodOptions } from "../../src/drivers/gpio/gpiod.js";
import { ROOT } from "./daemon.js";
import { FIXTURE_NODE, slow } from "./slow.js";

export { FakeGpioKernel, PI4_CHARDEV_CHIPS, PI5_CHARDEV_CHIPS } from "../../scripts/gpiod-emulator/kernel.js";

export const EMULATOR = join(ROOT, "dist/scripts/gpiod-emulator/tools.js");
const TOOLS = ["gpiodetect", "gpioget", "gpioset", "gpiomon"] as const;
/** How long a v1 helper (which says nothing) must live to count as holding its lines, in the tests. */
export const V1_SETTLE_MS = 1000;

/** The dialects the tests run: Bookworm's 1.6.3, Trixie's 2.1.3, and a v2 gpioset built without -i. */
export const DIALECTS = [
  { name: "v1 (Bookworm 1.6.3)", version: "1.6.3", interactive: false },
  { name: "v2 (Trixie 2.1.3, gpioset -i)", version: "2.1.3", interactive: true },
  { name: "v2 without gpioset -i", version: "2.1.3", interactive: false },
] as const;

/** Throws, naming the fix, when the emulator is not built or older than its sources. */
export function requireBuiltEmulator(): void {
  if (!existsSync(EMULATOR)) throw new Error(`${EMULATOR} is missing: run \`npm run build\` (npm test does)`);
  const built = statSync(EMULATOR).mtimeMs;
  for (const src of ["tools.ts", "protocol.ts"]) {
    if (statSync(join(ROOT, "scripts/gpiod-emulator", src)).mtimeMs > built) {
      throw new Error(`${EMULATOR} is older than scripts/gpiod-emulator/${src}: run \`npm run build\``);
    }
  }
}

export interface FakeGpiod {
  kernel: FakeGpioKernel;
  /** PATH with the fake tools first, and the emulator's settings. */
  env: NodeJS.ProcessEnv;
  binDir: string;
  /** GpiodOptions for the driver: this env, and short waits for the tests. */
  options(extra?: Partial<GpiodOptions>): GpiodOptions;
  close(): Promise<void>;
}

/** A fake character device with `chips`, and the gpiod tools of `version` in a PATH directory. */
export async function fakeGpiod(opts: {
  version: string;
  interactive?: boolean;
  chips: readonly FakeChipSpec[];
  releasedOutputs?: "input" | "persist";
}): Promise<FakeGpiod> {
  requireBuiltEmulator();
  const kernel = new FakeGpioKernel(opts.chips, { releasedOutputs: opts.releasedOutputs ?? "input" });
  const socket = await kernel.start();
  const binDir = mkdtempSync(join(tmpdir(), "gpiod-tools-"));
  for (const tool of TOOLS) {
    const path = join(binDir, tool);
    writeFileSync(path, `#!/bin/sh\nexec "${FIXTURE_NODE}" "${EMULATOR}" ${tool} "$@"\n`);
    chmodSync(path, 0o755);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    GPIOD_EMU_SOCKET: socket,
    GPIOD_EMU_VERSION: opts.version,
    GPIOD_EMU_INTERACTIVE: opts.interactive === false ? "0" : "1",
  };
  return {
    kernel,
    env,
    binDir,
    // v1 tools never say they hold a line, so a v1 helper alive `settleMs` counts as holding it: that
    // must cover a fake tool's start (a node process: ~50 ms, several hundred on a loaded machine)
    options: (extra = {}) => ({ env, settleMs: V1_SETTLE_MS, ackMs: 3000, retry: { baseMs: 100, capMs: 400, random: () => 0.5 }, ...extra }),
    async close() {
      await kernel.stop();
      rmSync(binDir, { recursive: true, force: true });
    },
  };
}

/** Polls `pred` every 10 ms until it holds, or fails after `ms` with `what`. */
export async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + slow(ms);
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
