// The FTDI adapter's latency timer: read from a fake sysfs tree laid out as Linux's
// (class/tty/<name>/device/latency_timer), through a symbolic link standing for /dev/rs485-locks,
// so the port's kernel name comes from its real path as on a Pi. Then the bus over a socat
// pseudo-terminal with such a tree: one warning per open when the timer is above 1 ms, none at 1,
// and the board's health detail saying so.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { SerialPort } from "serialport";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createKerongBoards, type Rs485Boards } from "../../../src/drivers/rs485/boards.js";
import { Rs485Bus } from "../../../src/drivers/rs485/bus.js";
import { KerongConfig } from "../../../src/drivers/rs485/config.js";
import { KerongEmulator } from "../../../src/drivers/rs485/emulator.js";
import { createKerongParser, describeKerong, type KerongFrame } from "../../../src/drivers/rs485/kerong-codec.js";
import { latencyTimerMs } from "../../../src/drivers/usb-latency.js";
import { captureLog } from "../../helpers/log.js";
import { closeSerial, makePtyPair, openSerial, type PtyPair } from "../../helpers/socat.js";
import { slow } from "../../helpers/slow.js";
import { requireTools } from "../../helpers/tools.js";

const WARN = 40;

/** A sysfs root whose tty `name` has a latency_timer holding `text`. */
function fakeSysfs(dir: string, name: string, text: string): string {
  const root = join(dir, "sys");
  const device = join(root, "class/tty", name, "device");
  mkdirSync(device, { recursive: true });
  writeFileSync(join(device, "latency_timer"), text);
  return root;
}

describe("latencyTimerMs", () => {
  let dir: string;
  let port: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-latency-"));
    // The device node and the udev link the config names.
    mkdirSync(join(dir, "dev"));
    writeFileSync(join(dir, "dev/ttyUSB0"), "");
    port = join(dir, "dev/rs485-locks");
    symlinkSync(join(dir, "dev/ttyUSB0"), port);
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the timer of the tty the port's link resolves to", () => {
    expect(latencyTimerMs(port, fakeSysfs(dir, "ttyUSB0", "16\n"))).toBe(16);
  });

  it("reads 1 once the udev rule has set it", () => {
    expect(latencyTimerMs(port, fakeSysfs(dir, "ttyUSB0", "1\n"))).toBe(1);
  });

  it("is null for an adapter without the attribute (CH340, CP210x, a pty)", () => {
    const root = join(dir, "sys");
    mkdirSync(join(root, "class/tty/ttyUSB0/device"), { recursive: true });
    expect(latencyTimerMs(port, root)).toBeNull();
  });

  it("is null for anything but a whole number", () => {
    expect(latencyTimerMs(port, fakeSysfs(dir, "ttyUSB0", "sixteen\n"))).toBeNull();
  });

  it("is null for a port that does not exist, even when sysfs has a tty of that name", () => {
    const root = fakeSysfs(dir, "rs485-gone", "16\n");
    expect(latencyTimerMs(join(dir, "dev/rs485-gone"), root)).toBeNull();
  });
});

describe("the bus's adapter latency timer, over a pseudo-terminal", () => {
  let dir: string;
  let pair: PtyPair;
  let bus: Rs485Bus<KerongFrame> | undefined;

  beforeAll(() => requireTools("socat"));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-latency-"));
    pair = await makePtyPair();
  });

  afterEach(async () => {
    await bus?.stop();
    bus = undefined;
    await pair.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A bus on the pty whose (fake) adapter's timer says `text`. */
  function openBus(text: string) {
    const logs = captureLog();
    // socat's link names /dev/pts/N: sysfs would know the tty as N.
    const sysfsRoot = fakeSysfs(dir, basename(realpathSync(pair.host)), text);
    bus = new Rs485Bus({ path: pair.host, baudRate: 19200, parser: createKerongParser(), describe: describeKerong, gapMs: 2, reopen: { baseMs: 20, capMs: 100 }, log: logs.log, sysfsRoot });
    return { bus, lines: logs.lines };
  }
  const latencyWarnings = (lines: ReturnType<typeof captureLog>["lines"]) => lines.filter((l) => l.level === WARN && "latencyTimerMs" in l);

  it("warns once per open when the timer is 16 ms, saying what to do", async () => {
    const { bus, lines } = openBus("16\n");
    await bus.start();
    expect(bus.latencyTimerMs).toBe(16);
    const warned = latencyWarnings(lines);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ latencyTimerMs: 16, port: pair.host });
    expect(warned[0]!.msg).toMatch(/16 ms.*set it to 1 ms \(hardware\/udev\/99-lockerd-rs485\.rules\)/);

    await bus.stop();
    await bus.start();
    expect(latencyWarnings(lines)).toHaveLength(2);
  });

  it("says nothing when the timer is 1 ms", async () => {
    const { bus, lines } = openBus("1\n");
    await bus.start();
    expect(bus.isOpen).toBe(true);
    expect(bus.latencyTimerMs).toBe(1);
    expect(latencyWarnings(lines)).toEqual([]);
  });
});

describe("a board's health on a slow adapter", () => {
  let dir: string;
  let pair: PtyPair;
  let device: SerialPort;
  let detach: () => void;
  let set: Rs485Boards | undefined;

  beforeAll(() => requireTools("socat"));

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-latency-"));
    pair = await makePtyPair();
    device = await openSerial(pair.device, 19200);
    detach = new KerongEmulator({ boards: [0] }).attach(device);
  });

  afterEach(async () => {
    for (const p of set?.parts ?? []) await p.stop();
    set = undefined;
    detach();
    await closeSerial(device);
    await pair.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function healthWith(text: string) {
    const sysfsRoot = fakeSysfs(dir, basename(realpathSync(pair.host)), text);
    const config = KerongConfig.parse({ type: "kerong", port: pair.host, boards: [{ address: 0, firstChannel: 1 }], pollMs: 20, timeoutMs: 60, gapMs: 2 });
    set = createKerongBoards(config, { log: captureLog().log, sysfsRoot });
    const board = set.parts[0]!;
    await board.start();
    await vi.waitFor(() => expect(board.health().health).toBe("ok"), { timeout: slow(3000), interval: 5 });
    return board.health();
  }

  it("names the timer when it is above 1 ms (still ok: the board answers, only late)", async () => {
    expect(await healthWith("16\n")).toMatchObject({ health: "ok", detail: "channels 1..16, USB adapter latency timer 16 ms (should be 1)" });
  });

  it("does not mention it at 1 ms", async () => {
    expect((await healthWith("1\n")).detail).toBe("channels 1..16");
  });
});
