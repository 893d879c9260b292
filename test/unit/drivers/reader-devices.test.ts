// The reader drivers as devices: the HID driver against an emulated USB bus (raw boot-keyboard
// reports, unplug and re-plug without a restart), the serial drivers over real socat
// pseudo-terminals (RDM6300 frames with garbage, a serial keypad, a scanner, a Wiegand converter,
// the port vanishing and coming back).
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Input } from "../../../src/drivers/types.js";
import { HidBusEmulator } from "../../../src/drivers/readers/hid-emulator.js";
import { HidReader, HidReaderConfig } from "../../../src/drivers/readers/hid.js";
import { createReader, ReaderConfig } from "../../../src/drivers/readers/index.js";
import { rdm6300Frame } from "../../../src/drivers/readers/rdm6300.js";
import { encodeWiegand } from "../../../src/drivers/readers/wiegand.js";
import { typeReports } from "../../../src/drivers/readers/keyboard.js";
import { silentLogger } from "../../../src/log.js";
import { closeSerial, makePtyPair, openSerial, type PtyPair } from "../../helpers/socat.js";

const log = silentLogger();
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const f of cleanup.splice(0).reverse()) await f();
});

function collect(part: { on(e: "input", fn: (i: Input) => void): unknown }): Input[] {
  const got: Input[] = [];
  part.on("input", (i) => got.push(i));
  return got;
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("HID keyboard-wedge reader", () => {
  const cfg = (over: Record<string, unknown> = {}) => HidReaderConfig.parse({ type: "hid", vendorId: 0x08ff, productId: 0x0009, ...over });

  it("selects its reader by vendor/product, emits a badge per line, and survives unplug and re-plug", async () => {
    vi.useFakeTimers();
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 0x1234, productId: 0x1, path: "/dev/hidraw0" }); // a keyboard: not ours
    bus.plug({ vendorId: 0x08ff, productId: 0x0009, path: "/dev/hidraw1" });
    const r = new HidReader(cfg(), { log, terminal: "T1", hid: bus, random: () => 0 });
    const got = collect(r);
    await r.start();
    expect(bus.isOpen("/dev/hidraw1") && !bus.isOpen("/dev/hidraw0")).toBe(true);
    bus.type("/dev/hidraw1", "04a1b2c3");
    expect(got).toEqual([{ kind: "badge", terminal: "T1", id: "04A1B2C3" }]);
    const faults: string[] = [];
    r.availability.on("fault", (d) => faults.push(d));
    bus.unplug("/dev/hidraw1");
    expect(r.health()).toMatchObject({ health: "degraded" });
    expect(faults).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000); // rescans: not there
    bus.plug({ vendorId: 0x08ff, productId: 0x0009, path: "/dev/hidraw2" }); // back, on another node
    await vi.advanceTimersByTimeAsync(10_000);
    expect(r.health()).toMatchObject({ health: "ok" });
    bus.type("/dev/hidraw2", "5A5A0001");
    expect(got.map((i) => (i.kind === "badge" ? i.id : ""))).toEqual(["04A1B2C3", "5A5A0001"]);
    await r.stop();
    expect(bus.isOpen("/dev/hidraw2")).toBe(false);
  });

  it("counts a tag read twice in a row once, drops a partial line after the timeout, and ignores what is not a badge", async () => {
    vi.useFakeTimers();
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 0x08ff, productId: 0x0009, path: "/dev/hidraw1" });
    const r = new HidReader(cfg({ path: "/dev/hidraw1", vendorId: undefined, productId: undefined }), { log, terminal: "T1", hid: bus });
    const got = collect(r);
    await r.start();
    bus.type("/dev/hidraw1", "C0FFEE01");
    bus.type("/dev/hidraw1", "C0FFEE01");
    expect(got).toHaveLength(1);
    bus.send("/dev/hidraw1", typeReports("ABCD").slice(0, 4)); // "AB", then nothing
    await vi.advanceTimersByTimeAsync(600);
    bus.type("/dev/hidraw1", "0BADCAFE");
    bus.type("/dev/hidraw1", "hello world");
    expect(got.map((i) => (i.kind === "badge" ? i.id : i.kind))).toEqual(["C0FFEE01", "0BADCAFE"]);
    await r.stop();
  });

  it("as a QR scanner emits the text", async () => {
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 1, productId: 2, path: "/dev/hidraw3" });
    const r = createReader(ReaderConfig.parse({ type: "hid", vendorId: 1, productId: 2, emits: "scan" }), { log, terminal: "T1", hid: bus });
    const got = collect(r);
    await r.start();
    bus.type("/dev/hidraw3", "L:48213905");
    expect(got).toEqual([{ kind: "scan", terminal: "T1", text: "L:48213905" }]);
    await r.stop();
  });
});

describe("serial readers over a pseudo-terminal", () => {
  async function pair(): Promise<PtyPair> {
    const p = await makePtyPair();
    cleanup.push(() => p.close());
    return p;
  }

  it("RDM6300: good frames become badges once per tag; garbage, bad checksums and truncated frames are refused", async () => {
    const p = await pair();
    const r = createReader(ReaderConfig.parse({ type: "rdm6300", port: p.host, dedupeMs: 300 }), { log, terminal: "T1" });
    const got = collect(r);
    await r.start();
    cleanup.push(() => r.stop());
    await until(() => r.health().health === "ok");
    const tag = await openSerial(p.device, 9600);
    cleanup.push(() => closeSerial(tag));
    const good = rdm6300Frame("0400A1B2C3");
    const bad = Buffer.from(good);
    bad[12] = bad[12] === 0x30 ? 0x31 : 0x30;
    // The tag sits on the reader: the same frame repeats; noise and a broken frame in between.
    tag.write(Buffer.concat([Buffer.from([0xff, 0x00]), good, good.subarray(0, 6), bad, good]));
    await until(() => got.length >= 1);
    await new Promise((res) => setTimeout(res, 100));
    expect(got).toEqual([{ kind: "badge", terminal: "T1", id: "00A1B2C3" }]);
    await new Promise((res) => setTimeout(res, 350)); // the window passes: the next read counts
    tag.write(good);
    await until(() => got.length === 2);
    expect((r as unknown as { rejected: number }).rejected).toBe(1);
  });

  it("a serial keypad sends keys; a Wiegand converter's bits are parity-checked; the port vanishing is survived", async () => {
    const p = await pair();
    const keypad = createReader(ReaderConfig.parse({ type: "serial-keypad", port: p.host }), { log, terminal: "T1" });
    const got = collect(keypad);
    await keypad.start();
    cleanup.push(() => keypad.stop());
    await until(() => keypad.health().health === "ok");
    let dev = await openSerial(p.device, 9600);
    dev.write("12x3#");
    await until(() => got.map((i) => (i.kind === "keys" ? i.keys : "")).join("") === "123#");
    await closeSerial(dev);
    await p.unplug();
    await until(() => keypad.health().health === "degraded");
    await p.replug();
    await until(() => keypad.health().health === "ok", 15_000);
    dev = await openSerial(p.device, 9600);
    cleanup.push(() => closeSerial(dev));
    dev.write("*");
    await until(() => got.map((i) => (i.kind === "keys" ? i.keys : "")).join("") === "123#*");

    const q = await pair();
    const wiegand = createReader(ReaderConfig.parse({ type: "wiegand-serial", port: q.host }), { log, terminal: "T1" });
    const cards = collect(wiegand);
    await wiegand.start();
    cleanup.push(() => wiegand.stop());
    await until(() => wiegand.health().health === "ok");
    const conv = await openSerial(q.device, 9600);
    cleanup.push(() => closeSerial(conv));
    const bits = encodeWiegand("00010010" + "0001001000110100");
    const flipped = bits.slice(0, 3) + (bits[3] === "1" ? "0" : "1") + bits.slice(4);
    conv.write(`${flipped}\r${bits}\r\n`);
    await until(() => cards.length === 1);
    expect(cards).toEqual([{ kind: "badge", terminal: "T1", id: "121234" }]);
  });
});
