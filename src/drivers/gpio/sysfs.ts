// Which backend and chip a part's GPIO pins are on, and the sysfs side of it: sysfs numbers and
// whether we may use them. GpioPins (below) is what the relay, door and buzzer drivers and the I2C
// expanders' interrupt line attach to; it picks the backend:
//
//   backend "sysfs"    onoff on /sys/class/gpio (Raspberry Pi OS Bookworm and older)
//   backend "chardev"  /dev/gpiochipN through Debian's gpiod tools (chardev.ts, gpiod.ts)
//   backend "auto"     sysfs where <sysfsRoot>/class/gpio exists, else chardev (Trixie, newer kernels)
//
// Since kernel 6.6 (Raspberry Pi OS Bookworm) the sysfs GPIO numbers are offset by the chip's
// base: 512 on a Pi 4 (pinctrl-bcm2711), 571 on a Pi 5 (pinctrl-rp1), 0 on older kernels. The
// base is read from <sysfsRoot>/class/gpio/gpiochip*/{label,base,ngpio}, never hard-coded. On the
// character device a pin is the line offset on the chip found by label (gpiodetect).
import { EventEmitter } from "node:events";
import { constants } from "node:fs";
import { access, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents } from "../parts.js";
import { ChardevPins } from "./chardev.js";
import { PI_PIN_CONTROLLERS } from "./common.js";
import { GpiodTools, type CdevChip, type GpiodOptions } from "./gpiod.js";
import { BcmPin, GpioBackend, gpioChipFields } from "./config.js";
import { onoffLines, type GpioLine, type GpioLineOpener, type LineDirection, type LineEdge, type LineSpec } from "./line.js";

export { PI_PIN_CONTROLLERS, BcmPin, GpioBackend, gpioChipFields };

export interface GpioChip {
  /** e.g. "gpiochip512" */
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

const code = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;

const GROUP_HINT = "add the user to group gpio (sudo usermod -aG gpio <user>, then log in again; under systemd: SupplementaryGroups=gpio)";

function sysfsGone(dir: string): LockerError {
  return new LockerError(
    ErrorCode.HardwareUnavailable,
    `sysfs GPIO is gone on this OS: ${dir} does not exist (Raspberry Pi OS Trixie and newer kernels no longer ` +
      `provide /sys/class/gpio). Set the GPIO backend to "auto" or "chardev" (the character device through Debian's ` +
      `gpiod tools: sudo apt install gpiod), or put relays and door inputs on an I2C expander (mcp23017, pcf8574, pca9534)`,
    { path: dir },
  );
}

async function readNumber(path: string): Promise<number> {
  const n = Number.parseInt((await readFile(path, "utf8")).trim(), 10);
  if (!Number.isInteger(n)) throw new Error(`not a number: ${path}`);
  return n;
}

/** Every gpiochip under <sysfsRoot>/class/gpio. */
export async function listGpioChips(sysfsRoot: string): Promise<GpioChip[]> {
  const dir = join(sysfsRoot, "class", "gpio");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (code(e) === "ENOENT") throw sysfsGone(dir);
    if (code(e) === "EACCES") throw new LockerError(ErrorCode.HardwareUnavailable, `cannot read ${dir} (EACCES): ${GROUP_HINT}`, { path: dir });
    throw e;
  }
  const chips: GpioChip[] = [];
  for (const name of names.filter((n) => /^gpiochip\d+$/.test(n)).sort()) {
    const at = join(dir, name);
    const label = (await readFile(join(at, "label"), "utf8")).trim();
    chips.push({ name, label, base: await readNumber(join(at, "base")), ngpio: await readNumber(join(at, "ngpio")) });
  }
  return chips;
}

/** The chip the config's pins are on: the one labelled `chipLabel`, else the Pi's pin controller. */
export async function findGpioChip(sysfsRoot: string, chipLabel?: string): Promise<GpioChip> {
  const chips = await listGpioChips(sysfsRoot);
  const wanted = chipLabel ? [chipLabel] : PI_PIN_CONTROLLERS;
  for (const label of wanted) {
    const chip = chips.find((c) => c.label === label);
    if (chip) return chip;
  }
  const found = chips.map((c) => `${c.name} "${c.label}" base ${c.base}`).join(", ") || "none";
  const dir = join(sysfsRoot, "class", "gpio");
  throw new LockerError(
    ErrorCode.Config,
    chipLabel
      ? `no GPIO chip labelled "${chipLabel}" in ${dir} (chips: ${found}); set chipLabel to one of them`
      : `no Raspberry Pi pin controller (${PI_PIN_CONTROLLERS.join(", ")}) in ${dir} (chips: ${found}). ` +
          `Not a Raspberry Pi? Set chipLabel to the label of the chip the pins are on`,
    { path: dir, chips },
  );
}

/** Fails with what to do when <sysfsRoot>/class/gpio/export cannot be written. */
export async function checkGpioExport(sysfsRoot: string): Promise<void> {
  const path = join(sysfsRoot, "class", "gpio", "export");
  try {
    await access(path, constants.W_OK);
  } catch (e) {
    if (code(e) === "ENOENT") throw sysfsGone(join(sysfsRoot, "class", "gpio"));
    if (code(e) === "EACCES" || code(e) === "EPERM") {
      throw new LockerError(ErrorCode.HardwareUnavailable, `cannot write ${path} (${code(e)}): ${GROUP_HINT}`, { path });
    }
    throw e;
  }
}

/** An error of opening (exporting) one line, with what to do about it. */
export function lineOpenError(e: unknown, pin: number, sysfsNumber: number, sysfsRoot: string): LockerError {
  const what = `GPIO ${pin} (sysfs ${sysfsNumber})`;
  const context = { pin, sysfsNumber, cause: code(e) ?? String(e) };
  switch (code(e)) {
    case "EACCES":
    case "EPERM":
      return new LockerError(ErrorCode.HardwareUnavailable, `cannot export ${what}: permission denied on ${join(sysfsRoot, "class", "gpio", "export")}: ${GROUP_HINT}`, context);
    case "EBUSY":
      return new LockerError(ErrorCode.Config, `${what} is in use by another driver (EBUSY): check config.txt overlays (I2C, SPI, 1-Wire, UART pins) and other programs`, context);
    case "EINVAL":
      return new LockerError(ErrorCode.Config, `${what} is not a valid line on this chip (EINVAL)`, context);
    default:
      return new LockerError(ErrorCode.HardwareUnavailable, `cannot open ${what}: ${e instanceof Error ? e.message : String(e)}`, context);
  }
}

export interface GpioChipConfig {
  /** Default "auto". */
  backend?: GpioBackend | undefined;
  sysfsRoot: string;
  chipLabel?: string | undefined;
}

export interface GpioPinsOptions {
  /** How the gpiod tools are run (the chardev backend); tests put fake tools on its PATH. */
  gpiod?: GpiodOptions | GpiodTools | undefined;
  /** Where a chardev helper's death and restart are logged. */
  log?: Logger | undefined;
}

/** Which backend a part uses: an injected sysfs opener (the pin-bank emulator) means sysfs. */
export async function chooseBackend(config: GpioChipConfig, opener?: GpioLineOpener): Promise<"sysfs" | "chardev"> {
  const backend = config.backend ?? "auto";
  if (backend !== "auto") return backend;
  if (opener) return "sysfs";
  try {
    await access(join(config.sysfsRoot, "class", "gpio"));
    return "sysfs";
  } catch {
    return "chardev";
  }
}

/** One GpiodTools per options object: the dialect is looked up once however many parts attach. */
const toolsFor = new WeakMap<object, GpiodTools>();
const DEFAULT_OPTIONS: GpiodOptions = {};
function gpiodTools(o: GpiodOptions | GpiodTools | undefined): GpiodTools {
  if (o instanceof GpiodTools) return o;
  const key = o ?? DEFAULT_OPTIONS;
  let t = toolsFor.get(key);
  if (!t) toolsFor.set(key, (t = new GpiodTools(key)));
  return t;
}

interface SysfsSide {
  kind: "sysfs";
  chip: GpioChip;
  config: GpioChipConfig;
  opener: GpioLineOpener;
  open: Set<GpioLine>;
}

interface ChardevSide {
  kind: "chardev";
  pins: ChardevPins;
}

/**
 * The lines one part holds on the Pi's GPIO chip, on either backend: opens them by BCM pin,
 * releases them all. Emits `fault` / `recovered` when a chardev helper dies and comes back
 * (sysfs never does: its errors come with each read and write).
 */
export class GpioPins extends EventEmitter<AvailabilityEvents> {
  private constructor(private readonly side: SysfsSide | ChardevSide) {
    super();
    if (side.kind === "chardev") {
      side.pins.on("fault", (d) => this.emit("fault", d));
      side.pins.on("recovered", () => this.emit("recovered"));
    }
  }

  /** Finds the chip and checks access. `opener` absent: onoff (which only knows /sys) for sysfs. */
  static async attach(config: GpioChipConfig, opener?: GpioLineOpener, options: GpioPinsOptions = {}): Promise<GpioPins> {
    if ((await chooseBackend(config, opener)) === "chardev") {
      return new GpioPins({ kind: "chardev", pins: await ChardevPins.attach(gpiodTools(options.gpiod), config.chipLabel, options.log) });
    }
    if (!opener && config.sysfsRoot !== "/sys") {
      throw new LockerError(ErrorCode.Config, `sysfsRoot "${config.sysfsRoot}" needs a GPIO emulator: onoff only opens lines under /sys`, {
        sysfsRoot: config.sysfsRoot,
      });
    }
    const chip = await findGpioChip(config.sysfsRoot, config.chipLabel);
    await checkGpioExport(config.sysfsRoot);
    return new GpioPins({ kind: "sysfs", chip, config, opener: opener ?? onoffLines, open: new Set() });
  }

  get backend(): "sysfs" | "chardev" {
    return this.side.kind;
  }

  get chip(): GpioChip | CdevChip {
    return this.side.kind === "sysfs" ? this.side.chip : this.side.pins.chip;
  }

  /** The chardev side, when that is the backend (diagnostics, tests). */
  get chardev(): ChardevPins | null {
    return this.side.kind === "chardev" ? this.side.pins : null;
  }

  sysfsNumber(pin: number): number {
    const side = this.side;
    if (side.kind !== "sysfs") throw new LockerError(ErrorCode.Internal, "no sysfs numbers on the character device", { pin });
    if (pin >= side.chip.ngpio) {
      throw new LockerError(ErrorCode.Config, `GPIO ${pin} is beyond ${side.chip.name} (${side.chip.ngpio} lines)`, { pin });
    }
    return side.chip.base + pin;
  }

  async line(pin: number, direction: LineDirection, edge: LineEdge = "none"): Promise<GpioLine> {
    const [line] = await this.lines([{ pin, direction, edge }]);
    return line!;
  }

  /** Opens several lines at once, outputs at their starting level; all or none. On the character
   *  device a set of lines shares its helpers (one gpioset for the outputs, one gpiomon for the inputs). */
  async lines(specs: readonly LineSpec[]): Promise<GpioLine[]> {
    const side = this.side;
    if (side.kind === "chardev") return side.pins.open(specs);
    const opened: GpioLine[] = [];
    for (const s of specs) {
      const n = this.sysfsNumber(s.pin);
      try {
        const line = await side.opener.open(n, s.direction, s.edge ?? "none");
        side.open.add(line);
        opened.push(line);
      } catch (e) {
        for (const l of opened) releaseSysfsLine(l, side.open);
        throw lineOpenError(e, s.pin, n, side.config.sysfsRoot);
      }
    }
    return opened;
  }

  /** Every output to its safe level (chardev), every line released. Never throws. */
  async release(): Promise<void> {
    const side = this.side;
    if (side.kind === "chardev") return side.pins.release();
    for (const line of [...side.open]) releaseSysfsLine(line, side.open);
  }

  /** release() without waiting (callers that cannot wait: sysfs is done at once, chardev helpers end soon). */
  releaseAll(): void {
    void this.release();
  }

  describe(): string {
    const side = this.side;
    return side.kind === "sysfs" ? `${side.chip.name} (${side.chip.label}, base ${side.chip.base})` : side.pins.describe();
  }
}

function releaseSysfsLine(line: GpioLine, open: Set<GpioLine>): void {
  open.delete(line);
  try {
    line.unwatchAll();
    line.unexport();
  } catch {
    // already gone: nothing left to release
  }
}
