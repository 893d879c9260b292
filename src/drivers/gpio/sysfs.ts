// Which sysfs numbers the config's BCM pins are, and whether we may use them.
//
// Since kernel 6.6 (Raspberry Pi OS Bookworm) the sysfs GPIO numbers are offset by the chip's
// base: 512 on a Pi 4 (pinctrl-bcm2711), 571 on a Pi 5 (pinctrl-rp1), 0 on older kernels. The
// base is read from <sysfsRoot>/class/gpio/gpiochip*/{label,base,ngpio}, never hard-coded.
import { constants } from "node:fs";
import { access, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { ErrorCode, LockerError } from "../../errors.js";
import { onoffLines, type GpioLine, type GpioLineOpener, type LineDirection, type LineEdge } from "./line.js";

/** The Pi pin controllers carrying the 40-pin header, in order of preference. */
export const PI_PIN_CONTROLLERS = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"] as const;

/** Where the GPIO lines are found; every GPIO device's config carries these two fields. */
export const gpioChipFields = {
  sysfsRoot: z.string().min(1).default("/sys").describe("sysfs mount point (tests point it at a fake tree)"),
  chipLabel: z.string().min(1).optional().describe("GPIO chip label; default: the Pi's pin controller"),
};

/** A BCM GPIO number (the Pi 5's RP1 has 54 lines; the header carries 2-27). */
export const BcmPin = z.int().min(0).max(53);

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
      `provide /sys/class/gpio). Run Raspberry Pi OS Bookworm, or put relays and door inputs on an I2C expander ` +
      `(mcp23017, pcf8574, pca9534)`,
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
  sysfsRoot: string;
  chipLabel?: string | undefined;
}

/** The lines one part holds on the Pi's GPIO chip: opens them by BCM pin, releases them all. */
export class GpioPins {
  private readonly open = new Set<GpioLine>();

  private constructor(
    readonly chip: GpioChip,
    private readonly config: GpioChipConfig,
    private readonly opener: GpioLineOpener,
  ) {}

  /** Finds the chip and checks access. `opener` absent: onoff, which only knows /sys. */
  static async attach(config: GpioChipConfig, opener?: GpioLineOpener): Promise<GpioPins> {
    if (!opener && config.sysfsRoot !== "/sys") {
      throw new LockerError(ErrorCode.Config, `sysfsRoot "${config.sysfsRoot}" needs a GPIO emulator: onoff only opens lines under /sys`, {
        sysfsRoot: config.sysfsRoot,
      });
    }
    const chip = await findGpioChip(config.sysfsRoot, config.chipLabel);
    await checkGpioExport(config.sysfsRoot);
    return new GpioPins(chip, config, opener ?? onoffLines);
  }

  sysfsNumber(pin: number): number {
    if (pin >= this.chip.ngpio) {
      throw new LockerError(ErrorCode.Config, `GPIO ${pin} is beyond ${this.chip.name} (${this.chip.ngpio} lines)`, { pin });
    }
    return this.chip.base + pin;
  }

  async line(pin: number, direction: LineDirection, edge: LineEdge = "none"): Promise<GpioLine> {
    const n = this.sysfsNumber(pin);
    try {
      const line = await this.opener.open(n, direction, edge);
      this.open.add(line);
      return line;
    } catch (e) {
      throw lineOpenError(e, pin, n, this.config.sysfsRoot);
    }
  }

  /** Unexport every line opened here. Never throws. */
  releaseAll(): void {
    for (const line of this.open) {
      try {
        line.unwatchAll();
        line.unexport();
      } catch {
        // already gone: nothing left to release
      }
    }
    this.open.clear();
  }

  describe(): string {
    return `${this.chip.name} (${this.chip.label}, base ${this.chip.base})`;
  }
}
