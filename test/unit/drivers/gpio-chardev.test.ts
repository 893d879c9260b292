// GPIO relays and door inputs on the character device, through fake gpiod tools (real child
// processes, pipes and output formats; scripts/gpiod-emulator/) over a fake /dev/gpiochip, for each
// dialect: Bookworm's 1.6.3, Trixie's 2.1.3 with `gpioset -i`, and a 2.x gpioset built without it.
// Relays are held at their off level from the start, pulse for their time and are released off; a
// helper that dies is a fault, refused at once, restarted with backoff with every relay off again;
// doors come from gpiomon and are unknown while it is down.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createGpioDoors, GpioDoorsConfig } from "../../../src/drivers/gpio/doors.js";
import { createGpioRelays, GpioRelaysConfig } from "../../../src/drivers/gpio/relays.js";
import type { DoorPart, LockPart } from "../../../src/drivers/parts.js";
import type { DoorState } from "../../../src/drivers/types.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";
import { silentLogger } from "../../../src/log.js";
import { DIALECTS, fakeGpiod, PI4_CHARDEV_CHIPS, until, V1_SETTLE_MS, type FakeGpiod } from "../../helpers/gpiod.js";

const CHIP = "gpiochip0";
const log = silentLogger();
let root: string;
let fakes: FakeGpiod[];
let parts: { stop(): Promise<void> }[];

beforeEach(async () => {
  // an empty sysfs: no class/gpio, so backend "auto" picks the character device
  root = await mkdtemp(join(tmpdir(), "lockerd-chardev-"));
  fakes = [];
  parts = [];
});

afterEach(async () => {
  for (const p of parts) await p.stop();
  for (const f of fakes) await f.close();
  await rm(root, { recursive: true, force: true });
});

async function fake(d: (typeof DIALECTS)[number], releasedOutputs: "input" | "persist" = "input"): Promise<FakeGpiod> {
  const f = await fakeGpiod({ version: d.version, interactive: d.interactive, chips: PI4_CHARDEV_CHIPS, releasedOutputs });
  fakes.push(f);
  return f;
}

/** channel 1 on an active-high relay (GPIO 17), channels 2 and 3 on an active-low board (27, 22). */
function relaysConfig(): GpioRelaysConfig {
  return GpioRelaysConfig.parse({
    type: "gpio-relays",
    sysfsRoot: root,
    activeLow: true,
    relays: [
      { channel: 1, pin: 17, activeLow: false },
      { channel: 2, pin: 27 },
      { channel: 3, pin: 22 },
    ],
  });
}

/** The levels a request drove on a line, in order (releases and outside drives left out). */
const driven = (f: FakeGpiod, offset: number) =>
  f.kernel
    .history(CHIP, offset)
    .filter((h) => h.driven)
    .map((h) => h.level);

function availability(part: LockPart | DoorPart): string[] {
  const events: string[] = [];
  part.availability!.on("fault", (detail) => events.push(`fault ${detail}`));
  part.availability!.on("recovered", () => events.push("recovered"));
  return events;
}

describe.each(DIALECTS)("gpio on the character device, gpiod $name", (d) => {
  // a v1 write is done once its new holder has lived V1_SETTLE_MS (v1 tools say nothing)
  const settle = d.version.startsWith("1.") ? V1_SETTLE_MS : 0;
  it("holds every relay off from the start, pulses one for its time, and releases them off at stop", async () => {
    const f = await fake(d);
    const relays = createGpioRelays(relaysConfig(), { log, gpiod: f.options() });
    parts.push(relays);
    await relays.start();
    expect([f.kernel.level(CHIP, 17), f.kernel.level(CHIP, 27), f.kernel.level(CHIP, 22)]).toEqual([0, 1, 1]);
    for (const pin of [17, 27, 22]) {
      expect(f.kernel.direction(CHIP, pin)).toBe("output");
      expect(f.kernel.holder(CHIP, pin)).toMatchObject({ tool: "gpioset", consumer: d.version.startsWith("1.") ? "gpioset" : "lockerd" });
      expect(driven(f, pin)[0]).toBe(pin === 17 ? 0 : 1); // requested at its off level: no click
    }
    // one gpioset for the set with -i, else one per line
    const holders = new Set([17, 27, 22].map((pin) => f.kernel.holder(CHIP, pin)!.pid));
    expect(holders.size).toBe(d.interactive ? 1 : 3);
    expect(relays.health()).toMatchObject({ kind: "locks", health: "ok" });
    expect(relays.health().detail).toContain(`${CHIP} (pinctrl-bcm2711, /dev/${CHIP}, gpiod ${d.version}`);

    const t0 = Date.now();
    const pulse = relays.pulse(2, 300);
    await until(() => f.kernel.level(CHIP, 27) === 0, "relay 2 on");
    const onAfter = Date.now() - t0;
    await pulse;
    const total = Date.now() - t0;
    expect(f.kernel.level(CHIP, 27)).toBe(1);
    expect(driven(f, 27)).toEqual([1, 0, 1]);
    expect(driven(f, 22)).toEqual([1]); // the neighbours never moved
    expect(driven(f, 17)).toEqual([0]);
    // a write is a command to a running helper (-i), or a new holder per write otherwise
    process.stderr.write(`gpio-chardev ${d.name}: relay on ${onAfter} ms after pulse(), 300 ms pulse done after ${total} ms\n`);
    if (d.interactive) expect(onAfter).toBeLessThan(250);
    expect(total - 300).toBeLessThan(d.interactive ? 500 : 4000 + 2 * settle);

    await relays.stop();
    for (const pin of [17, 27, 22]) expect(f.kernel.holder(CHIP, pin)).toBeNull();
    expect(driven(f, 27).at(-1)).toBe(1);
    await until(() => f.kernel.processes().length === 0, "every helper gone");
    expect(relays.health().health).toBe("absent");
  });

  it("drives a relay off before releasing it when stopped mid-pulse", async () => {
    const f = await fake(d, "persist"); // a released output keeps its level: only the driver turns it off
    const relays = createGpioRelays(relaysConfig(), { log, gpiod: f.options() });
    await relays.start();
    const pulse = relays.pulse(1, 5000);
    await until(() => f.kernel.level(CHIP, 17) === 1, "relay 1 on");
    await relays.stop();
    await pulse;
    expect(f.kernel.level(CHIP, 17)).toBe(0);
    expect(driven(f, 17)).toEqual([0, 1, 0]);
    expect(f.kernel.holder(CHIP, 17)).toBeNull();
  });

  it("a dead gpioset faults the relays, refuses pulses at once, and comes back with every relay off", async () => {
    const f = await fake(d, "persist"); // a released output keeps its level: only a helper turns it off
    const relays = createGpioRelays(relaysConfig(), { log, gpiod: f.options({ retry: { baseMs: 600, capMs: 1200, random: () => 0.5 } }) });
    parts.push(relays);
    const events = availability(relays);
    await relays.start();

    // idle: the helper dies, pulses are refused at once (nothing sent) until it is back (450 ms)
    const first = f.kernel.holder(CHIP, 17)!.pid;
    process.kill(first, "SIGKILL");
    await until(() => events.length === 1, "the fault");
    expect(events[0]).toMatch(/^fault gpioset for GPIO 17(,27,22)? on gpiochip0 ended \(killed by SIGKILL\)$/);
    expect(relays.health()).toMatchObject({ health: "faulted" });
    const refused = await relays.pulse(1, 100).catch((e: unknown) => e);
    expect(isLockerError(refused, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((refused as Error).message).toMatch(/not running \(restarting with backoff\)/);
    await until(() => events.length === 2, "the restart", 8000);
    expect(events[1]).toBe("recovered");
    expect(relays.health()).toMatchObject({ health: "ok" });
    expect(f.kernel.holder(CHIP, 17)!.pid).not.toBe(first);
    expect(f.kernel.level(CHIP, 17)).toBe(0);

    // mid-pulse: the dead helper's line stays on; the restarted one drives it off at once
    const pulse = relays.pulse(1, 3000 + 2 * settle).then(
      () => "done",
      (e: unknown) => e,
    );
    await until(() => f.kernel.level(CHIP, 17) === 1, "relay 1 on");
    await new Promise((r) => setTimeout(r, 700 + settle)); // the write is done
    const t0 = Date.now();
    process.kill(f.kernel.holder(CHIP, 17)!.pid, "SIGKILL");
    await until(() => events.length === 3, "the second fault");
    expect(f.kernel.level(CHIP, 17)).toBe(1);
    await until(() => events.length === 4, "the second restart", 8000);
    expect(f.kernel.level(CHIP, 17)).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2300 + settle); // off before the pulse would have ended
    await relays.pulse(3, 100);
    expect(driven(f, 22).slice(-2)).toEqual([0, 1]);
    expect(await pulse).toBe("done");
    expect(driven(f, 17).at(-1)).toBe(0);
  });

  it("reads doors from gpiomon: levels at start, debounced edges, unknown while gpiomon is down", async () => {
    const f = await fake(d);
    // doors 1 and 2 switch to GND (low = closed); door 3 is wired the other way round
    f.kernel.drive(CHIP, 5, 0);
    f.kernel.drive(CHIP, 6, 1);
    f.kernel.drive(CHIP, 13, 1);
    const config = GpioDoorsConfig.parse({
      type: "gpio-doors",
      sysfsRoot: root,
      debounceMs: 30,
      reconcileMs: 200,
      doors: [
        { channel: 1, pin: 5 },
        { channel: 2, pin: 6 },
        { channel: 3, pin: 13, activeLow: false },
      ],
    });
    const doors = createGpioDoors(config, { log, gpiod: f.options({ retry: { baseMs: 600, capMs: 1200, random: () => 0.5 } }) });
    parts.push(doors);
    const changes: [number, DoorState][] = [];
    doors.on("change", (channel, state) => changes.push([channel, state]));
    const events = availability(doors);
    await doors.start();
    expect([doors.read(1), doors.read(2), doors.read(3)]).toEqual(["closed", "open", "closed"]);
    expect(f.kernel.holder(CHIP, 5)).toMatchObject({ tool: "gpiomon", edge: "both" });
    expect(new Set([5, 6, 13].map((pin) => f.kernel.holder(CHIP, pin)!.pid)).size).toBe(1);

    f.kernel.drive(CHIP, 5, 1);
    await until(() => changes.length === 1, "door 1 opening");
    expect(changes).toEqual([[1, "open"]]);
    // a bouncing contact: one change, once it settles
    for (const level of [0, 1, 0, 1, 0] as const) f.kernel.drive(CHIP, 6, level);
    await until(() => changes.length === 2, "door 2 closing");
    await new Promise((r) => setTimeout(r, 100));
    expect(changes).toEqual([
      [1, "open"],
      [2, "closed"],
    ]);

    process.kill(f.kernel.holder(CHIP, 5)!.pid, "SIGKILL");
    await until(() => events.length > 0, "the fault");
    expect(events[0]).toMatch(/^fault gpiomon for GPIO 5,6,13 on gpiochip0 ended/);
    expect(doors.read(1)).toBe("unknown");
    expect(doors.health().health).toBe("faulted");
    f.kernel.drive(CHIP, 13, 0); // door 3 opens while nobody watches
    await until(() => events.includes("recovered"), "gpiomon back", 8000);
    await until(() => changes.length === 3, "the change made while down");
    expect(changes[2]).toEqual([3, "open"]);
    expect([doors.read(1), doors.read(2), doors.read(3)]).toEqual(["open", "closed", "open"]);
    expect(doors.health().health).toBe("ok");

    await doors.stop();
    expect(f.kernel.holder(CHIP, 5)).toBeNull();
  });
});
