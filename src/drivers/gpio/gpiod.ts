// Debian's gpiod tools (libgpiod's gpiodetect, gpioget, gpioset, gpiomon) as lockerd's way onto the
// GPIO character device (/dev/gpiochipN): which version is installed, which chips there are, how to
// start a long-lived helper, and what its error output means. chardev.ts builds the lines on this.
//
// Why the tools and not an npm binding: Node cannot call ioctl(), so the character device needs
// native code, and the npm bindings fall short here: node-libgpiod builds only against libgpiod v1
// (Bookworm), not v2 (Trixie, the OS that lost sysfs GPIO); @iiot2k/gpiox ships closed prebuilt
// arm/arm64 objects, so it neither loads in CI (x86-64) nor can be read. The tools are Debian's own
// package (`gpiod`, installed by scripts/install-pi.sh), versioned with the kernel interface they
// speak, and a helper process that dies takes its line requests with it (the kernel releases them).
//
// Two dialects (man pages of gpiod 1.6.3; libgpiod v2 tools/*.c):
//   v1 (Bookworm, 1.6.x)  gpioset [--mode=wait] CHIP OFF=V...     gpiomon -b -F FMT [-r|-f] CHIP OFF...
//                         gpioget CHIP OFF... → "1 0"             %e: 1 rising, 0 falling
//   v2 (Trixie, 2.x)      gpioset [-i] [--banner] -C NAME -c CHIP OFF=V...
//                         gpiomon [--banner] -C NAME -c CHIP -e EDGES -F FMT OFF...   %E: rising/falling
//                         gpioget -C NAME -c CHIP OFF... → "\"5\"=active \"6\"=inactive"
// gpiodetect prints "gpiochip0 [pinctrl-bcm2711] (58 lines)" in both. Errors go to stderr as
// "<tool>: <what>: <strerror>" and exit 1.
import { spawn, type ChildProcess } from "node:child_process";
import type { BackoffOptions } from "../../backoff.js";
import { ErrorCode, LockerError } from "../../errors.js";
import { PI_PIN_CONTROLLERS, errnoCode } from "./common.js";

export type GpiodTool = "gpiodetect" | "gpioget" | "gpioset" | "gpiomon";

export interface GpiodOptions {
  /** The environment the tools run in; its PATH finds them (tests put fakes first). Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** v1 tools print nothing once they hold their lines: a helper alive this long after it started
   *  counts as holding them (ms, default 40). v2 tools say so (--banner, an answered `get`). */
  settleMs?: number;
  /** Longest wait for a helper's answer to a command, or for it to start (ms, default 2000). */
  ackMs?: number;
  /** Waits between restarts of a helper that died (default 500 ms doubling to 30 s, with jitter). */
  retry?: BackoffOptions;
  /** The consumer name v2 tools give the kernel (`gpioinfo` shows it); default "lockerd". */
  consumer?: string;
}

export interface GpiodDialect {
  /** As the tools print it, e.g. "1.6.3", "2.1.3". */
  version: string;
  major: 1 | 2;
  /** gpioset -i: one process holds a set of outputs and takes `set` commands on stdin (v2, if built with it). */
  interactive: boolean;
  /** --banner: gpioset and gpiomon say when they hold their lines (v2). */
  banner: boolean;
  /** util-linux setpriv can make each helper die with lockerd (PR_SET_PDEATHSIG). */
  pdeathsig: boolean;
}

/** A chip as gpiodetect lists it. */
export interface CdevChip {
  /** e.g. "gpiochip0" */
  name: string;
  label: string;
  ngpio: number;
  /** /dev/<name> */
  path: string;
}

/** What a tool said when it failed, with the errno its message names (EBUSY, EACCES, ENOENT...). */
export class GpiodError extends Error {
  constructor(
    readonly tool: string,
    message: string,
    readonly code: string | undefined,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "GpiodError";
  }
}

const ERRNO_TEXT: readonly [RegExp, string][] = [
  [/Device or resource busy/i, "EBUSY"],
  [/Permission denied/i, "EACCES"],
  [/Operation not permitted/i, "EPERM"],
  [/No such device\b/i, "ENODEV"],
  [/No such file or directory|cannot find GPIO chip/i, "ENOENT"],
  [/Invalid argument|out of range/i, "EINVAL"],
];

/** The errno a tool's error output names. */
export function errnoOf(stderr: string): string | undefined {
  for (const [re, code] of ERRNO_TEXT) if (re.test(stderr)) return code;
  return undefined;
}

export const DEFAULT_CONSUMER = "lockerd";
const DEFAULT_ACK_MS = 2000;
const DEFAULT_SETTLE_MS = 40;

export const TOOLS_MISSING_FIX = "install Debian's gpiod tools: sudo apt install gpiod";

/** Last non-empty lines of a tool's stderr, one line. */
export function tail(stderr: string, lines = 3): string {
  return stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-lines)
    .join("; ");
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** How lockerd calls the gpiod tools: one instance per GpiodOptions, the dialect found once. */
export class GpiodTools {
  readonly env: NodeJS.ProcessEnv;
  readonly settleMs: number;
  readonly ackMs: number;
  readonly consumer: string;
  readonly retry: BackoffOptions;
  private dialectP: Promise<GpiodDialect> | null = null;

  constructor(readonly options: GpiodOptions = {}) {
    this.env = options.env ?? process.env;
    this.settleMs = options.settleMs ?? DEFAULT_SETTLE_MS;
    this.ackMs = options.ackMs ?? DEFAULT_ACK_MS;
    this.consumer = options.consumer ?? DEFAULT_CONSUMER;
    this.retry = options.retry ?? { baseMs: 500, capMs: 30_000 };
  }

  /** Runs a tool to its end (bounded by `timeoutMs`). A tool that is not installed: LockerError. */
  run(tool: string, args: readonly string[], timeoutMs = this.ackMs * 2): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      let stdout = "";
      let stderr = "";
      let child: ChildProcess;
      try {
        child = spawn(tool, args, { env: this.env, stdio: ["ignore", "pipe", "pipe"] });
      } catch (e) {
        reject(e);
        return;
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d));
      child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(errnoCode(e) === "ENOENT" ? toolsMissing(tool) : e);
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** Which gpiod tools are installed: `gpioset --version` (and `--help` for v2's options). */
  dialect(): Promise<GpiodDialect> {
    this.dialectP ??= this.detect();
    this.dialectP.catch(() => (this.dialectP = null)); // a later start may find them installed
    return this.dialectP;
  }

  private async detect(): Promise<GpiodDialect> {
    const v = await this.run("gpioset", ["--version"]);
    const m = /\(libgpiod\)\s+v(\d+)\.(\d+)(?:\.(\d+))?/.exec(v.stdout);
    if (v.code !== 0 || !m) {
      throw new LockerError(ErrorCode.HardwareUnavailable, `gpioset --version did not name a libgpiod version (${tail(v.stderr) || v.stdout.trim() || `exit ${v.code}`}): ${TOOLS_MISSING_FIX}`);
    }
    const version = `${m[1]}.${m[2]}${m[3] !== undefined ? `.${m[3]}` : ""}`;
    const major = Number(m[1]) >= 2 ? 2 : 1;
    let interactive = false;
    let banner = false;
    if (major === 2) {
      const help = (await this.run("gpioset", ["--help"])).stdout;
      interactive = /--interactive\b/.test(help);
      banner = /--banner\b/.test(help);
    }
    const pdeathsig = await this.run("setpriv", ["--pdeathsig", "TERM", "--", "true"]).then(
      (r) => r.code === 0,
      () => false,
    );
    return { version, major, interactive, banner, pdeathsig };
  }

  /** Every chip gpiodetect lists. */
  async chips(): Promise<{ chips: CdevChip[]; stderr: string }> {
    const r = await this.run("gpiodetect", []);
    const chips = parseGpiodetect(r.stdout);
    if (r.code !== 0 && chips.length === 0) {
      throw new GpiodError("gpiodetect", `gpiodetect failed: ${tail(r.stderr) || `exit ${r.code}`}`, errnoOf(r.stderr), r.stderr);
    }
    return { chips, stderr: r.stderr };
  }

  /** The chip the config's pins are on: the one labelled `chipLabel`, else the Pi's pin controller. */
  async findChip(chipLabel?: string): Promise<CdevChip> {
    let listed: { chips: CdevChip[]; stderr: string };
    try {
      listed = await this.chips();
    } catch (e) {
      if (e instanceof GpiodError) throw chipAccessError(e.stderr, e.message);
      throw e;
    }
    const wanted = chipLabel ? [chipLabel] : PI_PIN_CONTROLLERS;
    for (const label of wanted) {
      const chip = listed.chips.find((c) => c.label === label);
      if (chip) return chip;
    }
    if (listed.chips.length === 0 || errnoOf(listed.stderr) === "EACCES" || errnoOf(listed.stderr) === "EPERM") {
      throw chipAccessError(listed.stderr, listed.chips.length ? `gpiodetect could not open every chip` : `gpiodetect lists no GPIO chip`);
    }
    const found = listed.chips.map((c) => `${c.name} [${c.label}] (${c.ngpio} lines)`).join(", ");
    throw new LockerError(
      ErrorCode.Config,
      chipLabel
        ? `no GPIO chip labelled "${chipLabel}" (gpiodetect: ${found}); set chipLabel to one of them`
        : `no Raspberry Pi pin controller (${PI_PIN_CONTROLLERS.join(", ")}) among the GPIO chips (gpiodetect: ${found}). ` +
            `Not a Raspberry Pi? Set chipLabel to the label of the chip the pins are on`,
      { chips: listed.chips },
    );
  }

  /** Starts a long-lived helper. With setpriv, the kernel sends it SIGTERM when lockerd dies, so it
   *  never outlives lockerd holding a relay on. */
  spawnHelper(dialect: GpiodDialect, tool: GpiodTool, args: readonly string[]): ChildProcess {
    const [cmd, argv] = dialect.pdeathsig ? ["setpriv", ["--pdeathsig", "TERM", "--", tool, ...args]] : [tool, [...args]];
    return spawn(cmd, argv, { env: this.env, stdio: ["pipe", "pipe", "pipe"] });
  }
}

function toolsMissing(tool: string): LockerError {
  return new LockerError(
    ErrorCode.HardwareUnavailable,
    `${tool} is not installed: without /sys/class/gpio lockerd reaches GPIO through the character device (/dev/gpiochip*) ` +
      `and Debian's gpiod tools; ${TOOLS_MISSING_FIX}`,
    { tool },
  );
}

const GROUP_FIX =
  "add the user to group gpio (sudo usermod -aG gpio <user>, then log in again); under systemd: SupplementaryGroups=gpio and " +
  "DeviceAllow=char-gpiochip rw (DevicePolicy=closed hides /dev/gpiochip*)";

function chipAccessError(stderr: string, what: string): LockerError {
  const errno = errnoOf(stderr);
  if (errno === "EACCES" || errno === "EPERM") {
    return new LockerError(ErrorCode.HardwareUnavailable, `cannot open the GPIO chips (${tail(stderr)}): ${GROUP_FIX}`, { cause: errno });
  }
  return new LockerError(
    ErrorCode.HardwareUnavailable,
    `${what}${stderr.trim() ? ` (${tail(stderr)})` : ""}: no /dev/gpiochip* this user may open. Is this a Raspberry Pi (or a board with a GPIO chip)? ` +
      `Otherwise ${GROUP_FIX}`,
    { cause: errno },
  );
}

/** What a failed helper start means, naming the pins and the fix. */
export function lineStartError(e: GpiodError, pins: readonly number[], chip: CdevChip): LockerError {
  const what = `GPIO ${pins.join(",")} on ${chip.name} (${chip.label})`;
  const context = { pins, chip: chip.name, cause: e.code ?? "unknown", stderr: tail(e.stderr) };
  switch (e.code) {
    case "EBUSY":
      return new LockerError(
        ErrorCode.Config,
        `${what} is in use by another program or driver (EBUSY): \`gpioinfo ${chip.name}\` names the holder ` +
          `(a gpioset/gpiomon left running? an overlay in config.txt: I2C, SPI, 1-Wire, UART pins?)`,
        context,
      );
    case "EACCES":
    case "EPERM":
      return new LockerError(ErrorCode.HardwareUnavailable, `cannot open ${chip.path} for ${what} (${e.code}): ${GROUP_FIX}`, context);
    case "EINVAL":
      return new LockerError(ErrorCode.Config, `${what}: not a valid line on this chip (${tail(e.stderr)})`, context);
    case "ENOENT":
    case "ENODEV":
      return new LockerError(ErrorCode.HardwareUnavailable, `${chip.path} is gone (${tail(e.stderr)}): ${what} cannot be opened`, context);
    default:
      return new LockerError(ErrorCode.HardwareUnavailable, `cannot open ${what}: ${e.message}`, context);
  }
}

/** "gpiochip0 [pinctrl-bcm2711] (58 lines)" per chip, v1 and v2 alike. */
export function parseGpiodetect(stdout: string): CdevChip[] {
  const chips: CdevChip[] = [];
  for (const line of stdout.split("\n")) {
    const m = /^(\S+) \[(.*)\] \((\d+) lines\)\s*$/.exec(line);
    if (m) chips.push({ name: m[1]!, label: m[2]!, ngpio: Number(m[3]), path: `/dev/${m[1]!}` });
  }
  return chips;
}

/** gpioget's output, in the order of `offsets`: v1 "1 0", v2 `"5"=active "6"=inactive` (or --numeric "1 0"). */
export function parseGpioget(stdout: string, offsets: readonly number[]): (0 | 1)[] {
  const text = stdout.trim();
  const named = [...text.matchAll(/"?([^"=\s]+)"?=(active|inactive)/g)];
  if (named.length) {
    const byId = new Map(named.map((m) => [m[1]!, m[2] === "active" ? 1 : 0] as const));
    return offsets.map((o) => {
      const v = byId.get(String(o));
      if (v === undefined) throw new Error(`gpioget did not report line ${o}: ${text}`);
      return v;
    });
  }
  const values = text.split(/\s+/).filter(Boolean);
  if (values.length !== offsets.length || values.some((v) => v !== "0" && v !== "1")) throw new Error(`gpioget printed "${text}"`);
  return values.map((v) => (v === "1" ? 1 : 0));
}

/** The values `get` prints in gpioset's interactive mode: `"17"=active "27"=inactive`; null when the
 *  line is something else (an error message gpioset printed on stdout). */
export function parseValuesLine(line: string): Map<number, 0 | 1> | null {
  const tokens = line.trim().split(/\s+/).filter(Boolean);
  if (!tokens.length) return null;
  const values = new Map<number, 0 | 1>();
  for (const t of tokens) {
    const m = /^"?(\d+)"?=(active|inactive)$/.exec(t);
    if (!m) return null;
    values.set(Number(m[1]), m[2] === "active" ? 1 : 0);
  }
  return values;
}

/** One gpiomon event line as lockerd formats it ("%o %e" v1: 1/0; "%o %E" v2: rising/falling). */
export function parseEventLine(line: string): { offset: number; level: 0 | 1 } | null {
  const m = /^(\d+) (1|0|rising|falling)\s*$/.exec(line.trim());
  if (!m) return null;
  return { offset: Number(m[1]), level: m[2] === "1" || m[2] === "rising" ? 1 : 0 };
}

/** The arguments of each helper, per dialect. */
export const gpiodArgs = {
  /** Holds `values` until told to go. v1: until a newline (or EOF) on stdin; v2: until SIGTERM, or
   *  with `interactive` until `exit`, taking `set`/`get` meanwhile. */
  gpioset(d: GpiodDialect, chip: string, values: readonly (readonly [number, 0 | 1])[], opts: { interactive: boolean; consumer: string }): string[] {
    const lv = values.map(([o, v]) => `${o}=${v}`);
    if (d.major === 1) return ["--mode=wait", chip, ...lv];
    return [...(opts.interactive ? ["-i"] : d.banner ? ["--banner"] : []), "-C", opts.consumer, "-c", chip, ...lv];
  },
  gpiomon(d: GpiodDialect, chip: string, offsets: readonly number[], edge: "rising" | "falling" | "both", consumer: string): string[] {
    const os = offsets.map(String);
    if (d.major === 1) return ["-b", "-F", "%o %e", ...(edge === "rising" ? ["-r"] : edge === "falling" ? ["-f"] : []), chip, ...os];
    return [...(d.banner ? ["--banner"] : []), "-C", consumer, "-c", chip, "-e", edge, "-F", "%o %E", ...os];
  },
  gpioget(d: GpiodDialect, chip: string, offsets: readonly number[], consumer: string): string[] {
    const os = offsets.map(String);
    return d.major === 1 ? [chip, ...os] : ["-C", consumer, "-c", chip, ...os];
  },
};
