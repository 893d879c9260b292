// Chip discovery and access checks against fake /sys trees in a temporary directory: the BCM pin
// to sysfs number offset comes from the chip's base (512 on a Pi 4, 571 on a Pi 5 with Bookworm),
// and every way sysfs GPIO can be unusable ends in an error that says what to do.
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GpioEmulator, PI4_BOOKWORM_CHIPS, PI5_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import { createGpioRelays, GpioRelaysConfig } from "../../../src/drivers/gpio/relays.js";
import { checkGpioExport, findGpioChip, GpioPins } from "../../../src/drivers/gpio/sysfs.js";
import { ErrorCode, isLockerError, LockerError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "lockerd-sysfs-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<LockerError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
  if (!isLockerError(e)) throw e;
  return e;
}

describe("gpio chip discovery", () => {
  it("finds the Pi 4's pinctrl-bcm2711 at base 512, so BCM 17 is sysfs 529", async () => {
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    const chip = await findGpioChip(root);
    expect(chip).toEqual({ name: "gpiochip512", label: "pinctrl-bcm2711", base: 512, ngpio: 58 });
    const pins = await GpioPins.attach({ sysfsRoot: root }, new GpioEmulator());
    expect(pins.sysfsNumber(17)).toBe(512 + 17);
  });

  it("finds the Pi 5's pinctrl-rp1 at 571 among the SoC's own gpio-brcmstb chips", async () => {
    await writeFakeSysfs(root, PI5_BOOKWORM_CHIPS);
    const chip = await findGpioChip(root);
    expect(chip.label).toBe("pinctrl-rp1");
    expect(chip.base).toBe(571);
    const pins = await GpioPins.attach({ sysfsRoot: root }, new GpioEmulator());
    expect(pins.sysfsNumber(4)).toBe(575);
  });

  it("finds an older kernel's chip at base 0 and a configured label on another board", async () => {
    await writeFakeSysfs(root, [
      { name: "gpiochip0", label: "pinctrl-bcm2835", base: 0, ngpio: 54 },
      { name: "gpiochip100", label: "my-board-gpio", base: 100, ngpio: 16 },
    ]);
    expect((await findGpioChip(root)).base).toBe(0);
    expect((await findGpioChip(root, "my-board-gpio")).base).toBe(100);
  });

  it("says it is not a Pi, and lists the chips, when no Pi pin controller is there", async () => {
    await writeFakeSysfs(root, [{ name: "gpiochip0", label: "gpio-mockup-A", base: 0, ngpio: 8 }]);
    const e = await rejection(findGpioChip(root));
    expect(e.code).toBe(ErrorCode.Config);
    expect(e.message).toContain("Not a Raspberry Pi?");
    expect(e.message).toContain('gpiochip0 "gpio-mockup-A" base 0');
    const labelled = await rejection(findGpioChip(root, "pinctrl-rp1"));
    expect(labelled.message).toContain('no GPIO chip labelled "pinctrl-rp1"');
  });

  it("says sysfs GPIO is gone (Trixie) when <root>/class/gpio does not exist", async () => {
    const e = await rejection(findGpioChip(root));
    expect(e.code).toBe(ErrorCode.HardwareUnavailable);
    expect(e.message).toContain("sysfs GPIO is gone on this OS");
    expect(e.message).toContain(join(root, "class", "gpio"));
    expect(e.message).toContain("I2C expander");
  });

  it("refuses a pin beyond the chip", async () => {
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    const pins = await GpioPins.attach({ sysfsRoot: root }, new GpioEmulator());
    expect(() => pins.sysfsNumber(58)).toThrow(/beyond gpiochip512/);
  });

  it("refuses a non-default sysfsRoot with onoff, which only knows /sys", async () => {
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    const e = await rejection(GpioPins.attach({ sysfsRoot: root }));
    expect(e.code).toBe(ErrorCode.Config);
  });
});

describe("gpio access", () => {
  it("tells the user to join group gpio when export gives EACCES", async () => {
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    const gpio = new GpioEmulator();
    gpio.failExport("any", "EACCES");
    const relays = createGpioRelays(GpioRelaysConfig.parse({ type: "gpio-relays", sysfsRoot: root, relays: [{ channel: 1, pin: 17 }] }), {
      log: silentLogger(),
      gpio,
    });
    const e = await rejection(relays.start());
    expect(e.code).toBe(ErrorCode.HardwareUnavailable);
    expect(e.message).toContain("GPIO 17 (sysfs 529)");
    expect(e.message).toContain("add the user to group gpio");
    expect(e.context).toMatchObject({ pin: 17, sysfsNumber: 529, cause: "EACCES" });
  });

  it("names the other driver when a pin is busy (EBUSY)", async () => {
    await writeFakeSysfs(root, PI5_BOOKWORM_CHIPS);
    const gpio = new GpioEmulator();
    gpio.failExport(571 + 2, "EBUSY");
    const relays = createGpioRelays(GpioRelaysConfig.parse({ type: "gpio-relays", sysfsRoot: root, relays: [{ channel: 1, pin: 2 }] }), {
      log: silentLogger(),
      gpio,
    });
    const e = await rejection(relays.start());
    expect(e.code).toBe(ErrorCode.Config);
    expect(e.message).toMatch(/in use by another driver/);
  });

  it("says sysfs is gone when the export file is missing", async () => {
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    await rm(join(root, "class", "gpio", "export"));
    const e = await rejection(checkGpioExport(root));
    expect(e.message).toContain("sysfs GPIO is gone on this OS");
  });

  // root may write any file, so only an unprivileged run can see the permission check fail
  it("tells the user to join group gpio when export is not writable", async (ctx) => {
    if (process.getuid?.() === 0) {
      process.stderr.write("gpio-sysfs: skipped 'join group gpio' (root may write any file; run the suite as a user to see it)\n");
      ctx.skip("root may write any file: only an unprivileged run sees the permission check fail");
    }
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    await chmod(join(root, "class", "gpio", "export"), 0o444);
    const e = await rejection(checkGpioExport(root));
    expect(e.code).toBe(ErrorCode.HardwareUnavailable);
    expect(e.message).toContain("add the user to group gpio");
  });
});
