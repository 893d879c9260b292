// Setting up GPIO on the character device, through fake gpiod tools over a fake /dev/gpiochip
// (test/helpers/gpiod.ts): the chip is found by label (a Pi 5's RP1 is not gpiochip0), every way it
// can fail says what to do, "auto" picks sysfs only where /sys/class/gpio exists, a chip that goes
// away is retried until it is back, helpers do not outlive lockerd, an optional buzzer that cannot
// start is skipped while relays that cannot start fail the start by name, and an MCP23017's
// interrupt line is watched by gpiomon.
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createGpioBuzzer, GpioBuzzerConfig } from "../../../src/drivers/gpio/buzzer.js";
import { createGpioDoors, GpioDoorsConfig } from "../../../src/drivers/gpio/doors.js";
import { PI4_BOOKWORM_CHIPS, writeFakeSysfs } from "../../../src/drivers/gpio/emulator.js";
import { createGpioRelays, GpioRelaysConfig } from "../../../src/drivers/gpio/relays.js";
import { chooseBackend } from "../../../src/drivers/gpio/sysfs.js";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { Mcp23017Model } from "../../../src/drivers/i2c/emulator/mcp23017.js";
import { createMcp23017, Mcp23017Config } from "../../../src/drivers/i2c/mcp23017.js";
import { buildRealHardware } from "../../../src/drivers/real/build.js";
import { RealProfile } from "../../../src/drivers/real/profile.js";
import type { DoorState } from "../../../src/drivers/types.js";
import { ErrorCode, isLockerError, LockerError } from "../../../src/errors.js";
import { createLogger, silentLogger } from "../../../src/log.js";
import { ROOT } from "../../helpers/daemon.js";
import { fakeGpiod, PI4_CHARDEV_CHIPS, PI5_CHARDEV_CHIPS, until, type FakeGpiod } from "../../helpers/gpiod.js";

const log = process.env.DEBUG_GPIO ? createLogger("debug") : silentLogger();
const V2 = { version: "2.1.3", interactive: true };
let root: string;
let fakes: FakeGpiod[];
let cleanups: (() => Promise<void>)[];

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "lockerd-chardev-setup-")); // no class/gpio: "auto" is chardev
  fakes = [];
  cleanups = [];
});

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const f of fakes) await f.close();
  await rm(root, { recursive: true, force: true });
});

async function fake(opts: Partial<Parameters<typeof fakeGpiod>[0]> = {}): Promise<FakeGpiod> {
  const f = await fakeGpiod({ ...V2, chips: PI4_CHARDEV_CHIPS, ...opts });
  fakes.push(f);
  return f;
}

function relays(f: FakeGpiod | { options: () => object }, extra: Record<string, unknown> = {}, pins = [17, 27]) {
  const config = GpioRelaysConfig.parse({ type: "gpio-relays", sysfsRoot: root, relays: pins.map((pin, i) => ({ channel: i, pin })), ...extra });
  const part = createGpioRelays(config, { log, gpiod: f.options() });
  cleanups.push(() => part.stop());
  return part;
}

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

describe("the chip, by label", () => {
  it("finds a Pi 5's header on pinctrl-rp1 (gpiochip4 here), not on the SoC's gpiochip0", async () => {
    const f = await fake({ chips: PI5_CHARDEV_CHIPS });
    const r = relays(f);
    await r.start();
    expect(f.kernel.holder("gpiochip4", 17)).toMatchObject({ tool: "gpioset", consumer: "lockerd" });
    expect(f.kernel.holder("gpiochip4", 27)).not.toBeNull();
    expect(f.kernel.holder("gpiochip0", 17)).toBeNull();
    expect(r.health().detail).toContain("gpiochip4 (pinctrl-rp1, /dev/gpiochip4");
  });

  it("takes chipLabel for another board's chip, by label in both dialects", async () => {
    for (const version of ["1.6.3", "2.1.3"]) {
      const f = await fake({ version, chips: PI5_CHARDEV_CHIPS });
      const r = relays(f, { chipLabel: "gpio-brcmstb@107d508500" }, [3]);
      await r.start();
      expect(f.kernel.holder("gpiochip0", 3)?.tool).toBe("gpioset");
      await r.stop();
    }
  });

  it("refuses a host without the Pi's pin controller, naming the chips it has (a config error: exit 78)", async () => {
    for (const version of ["1.6.3", "2.1.3"]) {
      const f = await fake({ version, chips: [{ name: "gpiochip0", label: "gpio-mockup-A", ngpio: 8 }] });
      const e = await rejection(relays(f).start());
      expect(e.code).toBe(ErrorCode.Config);
      expect(e.message).toContain("Not a Raspberry Pi?");
      expect(e.message).toContain("gpiochip0 [gpio-mockup-A] (8 lines)");
      const labelled = await rejection(relays(f, { chipLabel: "pinctrl-rp1" }).start());
      expect(labelled.message).toContain('no GPIO chip labelled "pinctrl-rp1"');
      const beyond = await rejection(relays(f, { chipLabel: "gpio-mockup-A" }, [9]).start());
      expect(beyond.message).toBe("GPIO 9 is beyond gpiochip0 (8 lines)");
      expect(f.kernel.processes()).toEqual([]);
    }
  });
});

describe("what a start that cannot work says", () => {
  it("no GPIO chip at all: says so, and how it could be a permission", async () => {
    const f = await fake({ chips: [] });
    const e = await rejection(relays(f).start());
    expect(e.code).toBe(ErrorCode.HardwareUnavailable);
    expect(e.message).toMatch(/gpiodetect lists no GPIO chip.*group gpio/);
  });

  it("a user who may not open /dev/gpiochip*: group gpio, and DeviceAllow under systemd", async () => {
    for (const version of ["1.6.3", "2.1.3"]) {
      const f = await fake({ version });
      f.kernel.deny("gpiochip0");
      f.kernel.deny("gpiochip1");
      const e = await rejection(relays(f).start());
      expect(e.code).toBe(ErrorCode.HardwareUnavailable);
      expect(e.message).toContain("Permission denied");
      expect(e.message).toContain("add the user to group gpio");
      expect(e.message).toContain("DeviceAllow=char-gpiochip rw");
    }
  });

  it("the gpiod tools are not installed: names the package", async () => {
    const empty = await mkdtemp(join(tmpdir(), "no-tools-"));
    cleanups.push(() => rm(empty, { recursive: true, force: true }));
    const e = await rejection(relays({ options: () => ({ env: { PATH: empty } }) }).start());
    expect(e.code).toBe(ErrorCode.HardwareUnavailable);
    expect(e.message).toContain("sudo apt install gpiod");
  });

  it("a line another program holds (EBUSY): names the pins and how to find the holder; nothing is left held", async () => {
    for (const version of ["1.6.3", "2.1.3"]) {
      const f = await fake({ version });
      const other = spawn("gpioset", version === "1.6.3" ? ["--mode=signal", "gpiochip0", "27=1"] : ["-c", "gpiochip0", "27=1"], { env: f.env, stdio: "ignore" });
      cleanups.push(async () => void other.kill("SIGTERM"));
      await until(() => f.kernel.holder("gpiochip0", 27) !== null, "the other gpioset");
      const e = await rejection(relays(f).start());
      expect(e.code).toBe(ErrorCode.Config);
      expect(e.message).toContain("is in use by another program or driver (EBUSY)");
      expect(e.message).toContain("gpioinfo gpiochip0");
      expect(e.message).toMatch(/^GPIO 17,27 on gpiochip0 \(pinctrl-bcm2711\)/);
      expect(f.kernel.holder("gpiochip0", 17)).toBeNull();
      other.kill("SIGTERM");
      await until(() => f.kernel.holder("gpiochip0", 27) === null, "the other gpioset gone");
    }
  });
});

describe("backend auto", () => {
  it("is sysfs where <sysfsRoot>/class/gpio exists (Bookworm), else the character device; a forced one wins", async () => {
    expect(await chooseBackend({ sysfsRoot: root })).toBe("chardev");
    expect(await chooseBackend({ sysfsRoot: root, backend: "sysfs" })).toBe("sysfs");
    const bookworm = join(root, "bookworm");
    await mkdir(bookworm);
    await writeFakeSysfs(bookworm, PI4_BOOKWORM_CHIPS);
    expect(await chooseBackend({ sysfsRoot: bookworm })).toBe("sysfs");
    expect(await chooseBackend({ sysfsRoot: bookworm, backend: "chardev" })).toBe("chardev");
    // an injected sysfs pin bank (tests, the simulator) is sysfs
    expect(await chooseBackend({ sysfsRoot: root }, { open: () => Promise.reject(new Error("unused")) })).toBe("sysfs");
    expect(GpioRelaysConfig.parse({ type: "gpio-relays", relays: [{ channel: 0, pin: 5 }] }).backend).toBe("auto");
    expect(GpioRelaysConfig.safeParse({ type: "gpio-relays", backend: "gpiod", relays: [{ channel: 0, pin: 5 }] }).success).toBe(false);
  });

  it("forced chardev on a host that still has sysfs uses the tools", async () => {
    const f = await fake();
    await writeFakeSysfs(root, PI4_BOOKWORM_CHIPS);
    const r = relays(f, { backend: "chardev" });
    await r.start();
    expect(f.kernel.holder("gpiochip0", 17)?.tool).toBe("gpioset");
  });
});

describe("a chip that goes away", () => {
  it("faults doors and relays, retries with backoff while it is gone, and recovers them off when it is back", async () => {
    const f = await fake();
    const gpiod = f.options({ retry: { baseMs: 200, capMs: 400, random: () => 0.5 } });
    f.kernel.drive("gpiochip0", 5, 0);
    const doors = createGpioDoors(GpioDoorsConfig.parse({ type: "gpio-doors", sysfsRoot: root, doors: [{ channel: 0, pin: 5 }] }), { log, gpiod });
    const r = createGpioRelays(GpioRelaysConfig.parse({ type: "gpio-relays", sysfsRoot: root, relays: [{ channel: 0, pin: 17 }] }), { log, gpiod });
    cleanups.push(() => doors.stop(), () => r.stop());
    const events: string[] = [];
    doors.availability!.on("fault", (d) => events.push(`doors fault ${d}`));
    doors.availability!.on("recovered", () => events.push("doors recovered"));
    r.availability!.on("fault", (d) => events.push(`relays fault ${d}`));
    r.availability!.on("recovered", () => events.push("relays recovered"));
    await doors.start();
    await r.start();
    expect(doors.read(0)).toBe("closed");

    f.kernel.removeChip("gpiochip0");
    await until(() => events.length === 1, "gpiomon's end");
    expect(events[0]).toMatch(/^doors fault gpiomon for GPIO 5 on gpiochip0 ended \(exit 1: gpiomon: error reading line events: No such device\)$/);
    expect(doors.read(0)).toBe("unknown");
    // gpioset -i only finds out at its next set: the write fails, the relay part faults
    const e = await r.pulse(0, 100).catch((err: unknown) => err);
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((e as Error).message).toContain("unable to set values on 'gpiochip0': No such device");
    await until(() => events.some((x) => x.startsWith("relays fault")), "the relays' fault");
    await new Promise((res) => setTimeout(res, 800)); // restarts fail meanwhile: the chip is not listed
    expect(events.filter((x) => x.includes("recovered"))).toEqual([]);

    f.kernel.restoreChip("gpiochip0");
    f.kernel.drive("gpiochip0", 5, 1);
    await until(() => events.includes("doors recovered") && events.includes("relays recovered"), "both back", 8000);
    expect(f.kernel.level("gpiochip0", 17)).toBe(0);
    await until(() => doors.read(0) === "open", "the door read again");
    await r.pulse(0, 50);
  });
});

describe("helpers and lockerd's life", () => {
  it("a lockerd killed with SIGKILL leaves no helper holding a relay on (setpriv --pdeathsig)", async () => {
    // v2 gpioset without -i holds until a signal comes: only the parent-death signal can end it
    const f = await fake({ interactive: false });
    const dist = (p: string) => JSON.stringify(join(ROOT, "dist/src", p));
    const script = `
      import { createGpioRelays, GpioRelaysConfig } from ${dist("drivers/gpio/relays.js")};
      import { silentLogger } from ${dist("log.js")};
      const r = createGpioRelays(GpioRelaysConfig.parse({ type: "gpio-relays", sysfsRoot: ${JSON.stringify(root)}, relays: [{ channel: 0, pin: 17 }] }),
        { log: silentLogger(), gpiod: { env: process.env } });
      await r.start();
      void r.pulse(0, 60000);
      setInterval(() => {}, 1000);
      process.stdout.write("started\\n");`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { env: f.env, stdio: ["ignore", "pipe", "inherit"] });
    cleanups.push(async () => void child.kill("SIGKILL"));
    await until(() => f.kernel.level("gpiochip0", 17) === 1, "the relay on", 10_000);
    const helpers = f.kernel.processes().filter((p) => p.tool === "gpioset");
    expect(helpers.length).toBe(1);
    child.kill("SIGKILL");
    await until(() => f.kernel.holder("gpiochip0", 17) === null, "the line released", 5000);
    expect(f.kernel.level("gpiochip0", 17)).toBe(0); // released: an input again, the relay off
    await until(() => f.kernel.processes().length === 0, "no helper left");
  });
});

describe("in a real bank's hardware", () => {
  function profile(buzzerLabel?: string, relayLabel?: string) {
    return RealProfile.parse({
      profile: "real",
      boards: [
        { type: "gpio-relays", sysfsRoot: root, ...(relayLabel ? { chipLabel: relayLabel } : {}), relays: [{ channel: 0, pin: 17 }, { channel: 1, pin: 27 }] },
        { type: "gpio-doors", sysfsRoot: root, doors: [{ channel: 0, pin: 5 }, { channel: 1, pin: 6 }] },
      ],
      buzzer: { type: "gpio-buzzer", sysfsRoot: root, ...(buzzerLabel ? { chipLabel: buzzerLabel } : {}), buzzer: { pin: 18 }, led: { pin: 23, activeLow: true } },
    });
  }

  it("skips a buzzer that cannot start, reporting it by name, and runs the locks", async () => {
    const f = await fake();
    const hw = buildRealHardware(profile("no-such-chip"), { log, terminal: "t", gpiod: f.options() });
    const faults: [string, string][] = [];
    hw.on("fault", (device, detail) => faults.push([device, detail]));
    await hw.start();
    cleanups.push(() => hw.stop());
    expect(faults).toEqual([["gpio buzzer (GPIO 18,23)", expect.stringContaining('cannot start, skipped: no GPIO chip labelled "no-such-chip"') as string]]);
    const buzzer = hw.health().find((h) => h.kind === "buzzer")!;
    expect(buzzer).toMatchObject({ name: "gpio buzzer (GPIO 18,23)", health: "faulted" });
    expect(buzzer.detail).toMatch(/^skipped at start: no GPIO chip labelled "no-such-chip"/);
    hw.buzzer.sound("ok"); // a skipped buzzer is silent, never an error
    await hw.locks.pulse(1, 50);
    expect(
      f.kernel
        .history("gpiochip0", 27)
        .filter((h) => h.driven)
        .map((h) => h.level),
    ).toEqual([0, 1, 0]);
    expect(hw.doors.read(0)).toBe("closed");
  });

  it("a buzzer that starts sounds its patterns through the same helpers", async () => {
    const f = await fake();
    const b = createGpioBuzzer(GpioBuzzerConfig.parse({ type: "gpio-buzzer", sysfsRoot: root, buzzer: { pin: 18 }, led: { pin: 23, activeLow: true } }), { log, gpiod: f.options() });
    cleanups.push(() => b.stop());
    await b.start();
    expect([f.kernel.level("gpiochip0", 18), f.kernel.level("gpiochip0", 23)]).toEqual([0, 1]);
    b.sound("error"); // 250 on, 100 off, 250 on
    await new Promise((r) => setTimeout(r, 900));
    const steps = (pin: number) =>
      f.kernel
        .history("gpiochip0", pin)
        .filter((h) => h.driven)
        .map((h) => h.level);
    expect(steps(18)).toEqual([0, 1, 0, 1, 0]);
    expect(steps(23)).toEqual([1, 0, 1, 0, 1]);
  });

  it("relays that cannot start fail the start, the message led by the device's name", async () => {
    const f = await fake();
    const hw = buildRealHardware(profile(undefined, "no-such-chip"), { log, terminal: "t", gpiod: f.options() });
    const e = await rejection(hw.start());
    expect(e.code).toBe(ErrorCode.Config);
    expect(e.message).toMatch(/^gpio relays \(GPIO 17,27\): no GPIO chip labelled "no-such-chip" \(gpiodetect: gpiochip0 \[pinctrl-bcm2711\] \(58 lines\)/);
    expect(e.context).toMatchObject({ device: "gpio relays (GPIO 17,27)" });
    await until(() => f.kernel.processes().length === 0, "nothing left running");
  });
});

describe("an MCP23017's interrupt line on the character device", () => {
  it("is watched by gpiomon for falling edges: a door change is read at once", async () => {
    const f = await fake();
    // the expander opens its INT line with the default gpiod options: the tools on this process's PATH
    const saved = { ...process.env };
    Object.assign(process.env, { PATH: f.env.PATH, GPIOD_EMU_SOCKET: f.env.GPIOD_EMU_SOCKET, GPIOD_EMU_VERSION: "2.1.3", GPIOD_EMU_INTERACTIVE: "1" });
    cleanups.push(async () => {
      for (const k of ["PATH", "GPIOD_EMU_SOCKET", "GPIOD_EMU_VERSION", "GPIOD_EMU_INTERACTIVE"]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    const bus = new I2cBusEmulator();
    const chip = new Mcp23017Model();
    f.kernel.drive("gpiochip0", 24, 1); // pulled up
    chip.onInterrupt = (_pin, level) => f.kernel.drive("gpiochip0", 24, level);
    bus.attach(0x20, chip);
    const config = Mcp23017Config.parse({
      type: "mcp23017",
      address: 0x20,
      relays: { port: "A", channels: [1, 2] },
      doors: { port: "B", channels: [1, 2] },
      interrupt: { pin: 24, sysfsRoot: root, reconcileMs: 60_000 },
    });
    const board = createMcp23017(config, { log, openBus: bus.opener(), random: () => 0 });
    cleanups.push(() => board.stop());
    const changes: [number, DoorState][] = [];
    board.doors!.on("change", (channel, state) => changes.push([channel, state]));
    await board.start();
    expect(f.kernel.holder("gpiochip0", 24)).toMatchObject({ tool: "gpiomon", edge: "falling", consumer: "lockerd" });
    chip.setPin(9, 0); // door 2 closes: INT falls, the board reads GPIOB (which lets INT rise again)
    await until(() => changes.length === 1, "the door read on the interrupt", 3000);
    expect(changes).toEqual([[2, "closed"]]);
    expect(f.kernel.level("gpiochip0", 24)).toBe(1);
    await board.stop();
    await until(() => f.kernel.holder("gpiochip0", 24) === null, "gpiomon ended");
  });
});
