// The HID keyboard-wedge driver (the real code) against an emulated USB bus: raw boot-keyboard
// reports in, inputs out; selection by vendor/product and by path; unplug → degraded → re-plug →
// reading again without a restart; partial lines timing out; repeats counted once. Fake time.
import { afterEach, describe, expect, it, vi } from "vitest";
import { HidBusEmulator } from "../../../src/drivers/readers/hid-emulator.js";
import { createReader, ReaderConfig, type Reader } from "../../../src/drivers/readers/index.js";
import { keyReport, typeReports } from "../../../src/drivers/readers/keyboard.js";
import type { Input } from "../../../src/drivers/types.js";
import { silentLogger } from "../../../src/log.js";

const log = silentLogger();
const READER = { vendorId: 0x08ff, productId: 0x0009 };
const started: Reader[] = [];

afterEach(async () => {
  for (const r of started.splice(0)) await r.stop();
  vi.useRealTimers();
});

async function reader(bus: HidBusEmulator, config: Record<string, unknown>, now?: () => number) {
  const r = createReader(ReaderConfig.parse({ type: "hid", ...config }), { log, terminal: "T1", hid: bus, random: () => 0, now });
  const got: Input[] = [];
  const faults: string[] = [];
  let recovered = 0;
  r.on("input", (i) => got.push(i));
  r.availability?.on("fault", (d) => faults.push(d));
  r.availability?.on("recovered", () => recovered++);
  await r.start();
  started.push(r);
  return { r, got, faults, recovered: () => recovered };
}

describe("HID keyboard-wedge reader", () => {
  it("opens the reader matching vendor/product (the keyboard interface), not other HID devices", async () => {
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 0x1234, productId: 0x0001, path: "/dev/hidraw0" }); // a USB keyboard: not ours
    bus.plug({ ...READER, path: "/dev/hidraw1", usagePage: 0xff00, usage: 1 }); // the reader's vendor interface
    bus.plug({ ...READER, path: "/dev/hidraw2", usagePage: 1, usage: 6 }); // its keyboard interface
    const { r, got } = await reader(bus, READER);
    expect([bus.isOpen("/dev/hidraw0"), bus.isOpen("/dev/hidraw1"), bus.isOpen("/dev/hidraw2")]).toEqual([false, false, true]);
    expect(r.name).toBe("hid reader 08ff:0009");
    bus.type("/dev/hidraw2", "04a1b2c3");
    expect(got).toEqual([{ kind: "badge", terminal: "T1", id: "04A1B2C3" }]);
    expect(r.health()).toMatchObject({ kind: "reader", health: "ok", detail: "open /dev/hidraw2; 1 reads" });
  });

  it("selects by path, and feeds the terminal of its own config", async () => {
    const bus = new HidBusEmulator();
    bus.plug({ ...READER, path: "/dev/hidraw0" });
    bus.plug({ ...READER, path: "/dev/hidraw1" }); // two identical readers: the path tells them apart
    const { got } = await reader(bus, { path: "/dev/hidraw1", terminal: "T2" });
    expect(bus.isOpen("/dev/hidraw0")).toBe(false);
    bus.type("/dev/hidraw1", "C0FFEE01");
    expect(got).toEqual([{ kind: "badge", terminal: "T2", id: "C0FFEE01" }]);
  });

  it("survives unplug and re-plug without a restart: degraded, rescans with backoff, reads again", async () => {
    vi.useFakeTimers();
    const bus = new HidBusEmulator();
    bus.plug({ ...READER, path: "/dev/hidraw1" });
    const { r, got, faults, recovered } = await reader(bus, { ...READER, retryMaxMs: 2000 });
    bus.send("/dev/hidraw1", typeReports("0BAD").slice(0, 4)); // "0B", then the cable comes out
    bus.unplug("/dev/hidraw1");
    expect(r.health()).toMatchObject({ health: "degraded" });
    expect(r.health().detail).toMatch(/^unplugged: could not read from HID device; 0 reads, 1 discarded \(partial line 1\)/);
    expect(faults).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5000); // rescans find nothing
    expect(r.health().health).toBe("degraded");
    bus.plug({ ...READER, path: "/dev/hidraw4" }); // back, on another hidraw node
    await vi.advanceTimersByTimeAsync(2000); // within retryMaxMs
    expect(r.health()).toMatchObject({ health: "ok", detail: expect.stringMatching(/^open \/dev\/hidraw4/) });
    expect(recovered()).toBe(1);
    bus.type("/dev/hidraw4", "5A5A0001");
    expect(got.map((i) => i.kind === "badge" && i.id)).toEqual(["5A5A0001"]); // the half read before the unplug is gone
    await r.stop();
    expect(bus.isOpen("/dev/hidraw4")).toBe(false);
    const opens = bus.opens;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(bus.opens).toBe(opens); // stopped: no more rescans
  });

  it("is absent (not failing the start) until the reader is first plugged in", async () => {
    vi.useFakeTimers();
    const bus = new HidBusEmulator();
    const { r, got } = await reader(bus, READER);
    expect(r.health()).toMatchObject({ health: "absent", detail: expect.stringMatching(/^not plugged in/) });
    bus.plug({ ...READER, path: "/dev/hidraw0" });
    await vi.advanceTimersByTimeAsync(1000);
    bus.type("/dev/hidraw0", "1234ABCD");
    expect(got).toHaveLength(1);
  });

  it("drops a partial line after lineTimeoutMs without keys; a slow but steady read still counts", async () => {
    vi.useFakeTimers();
    const bus = new HidBusEmulator();
    bus.plug({ ...READER, path: "/dev/hidraw0" });
    const { r, got } = await reader(bus, { ...READER, lineTimeoutMs: 500 });
    const reports = typeReports("ABCD");
    bus.send("/dev/hidraw0", reports.slice(0, 4)); // "AB"
    await vi.advanceTimersByTimeAsync(499);
    bus.send("/dev/hidraw0", reports.slice(4, 6)); // "C" just in time
    await vi.advanceTimersByTimeAsync(499);
    bus.send("/dev/hidraw0", reports.slice(6)); // "D" Enter
    expect(got.map((i) => i.kind === "badge" && i.id)).toEqual(["ABCD"]);
    bus.send("/dev/hidraw0", typeReports("1234").slice(0, 4)); // "12" …
    await vi.advanceTimersByTimeAsync(500); // … and nothing more
    bus.type("/dev/hidraw0", "5678");
    expect(got.map((i) => i.kind === "badge" && i.id)).toEqual(["ABCD", "5678"]);
    expect(r.output.stats.discarded).toEqual({ "partial line": 1 });
  });

  it("counts a tag read again within dedupeMs once; garbage reports and non-ids are counted, not passed on", async () => {
    let t = 0;
    const bus = new HidBusEmulator();
    bus.plug({ ...READER, path: "/dev/hidraw0" });
    const { r, got } = await reader(bus, READER, () => t);
    bus.type("/dev/hidraw0", "04A1B2C3");
    t = 400;
    bus.type("/dev/hidraw0", "04a1b2c3");
    t = 3000;
    bus.type("/dev/hidraw0", "04A1B2C3");
    bus.send("/dev/hidraw0", [Buffer.from([0, 0]), Buffer.from("0000010101010101", "hex")]);
    bus.type("/dev/hidraw0", "hello world");
    expect(got).toHaveLength(2);
    expect(r.output.stats).toEqual({ reads: 2, repeats: 1, discarded: { "malformed report": 1, "not a badge id": 1 } });
  });

  it("as a QR scanner emits the scanned text; with report IDs; decimal badge numbers become hex when asked", async () => {
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 1, productId: 2, path: "/dev/hidraw3" });
    bus.plug({ vendorId: 1, productId: 3, path: "/dev/hidraw4" });
    const qr = await reader(bus, { vendorId: 1, productId: 2, emits: "scan", reportId: true });
    bus.type("/dev/hidraw3", "L:48213905", 1);
    expect(qr.got).toEqual([{ kind: "scan", terminal: "T1", text: "L:48213905" }]);
    const badge = await reader(bus, { vendorId: 1, productId: 3, badgeIds: "decimal-to-hex" });
    bus.send("/dev/hidraw4", [keyReport(0x27), keyReport(0)]); // a lone "0" then the full number
    bus.type("/dev/hidraw4", "077705923");
    expect(badge.got).toEqual([{ kind: "badge", terminal: "T1", id: "04A1B2C3" }]);
  });

  it("refuses a config with neither vendor/product nor path", () => {
    expect(ReaderConfig.safeParse({ type: "hid", vendorId: 1 }).success).toBe(false);
    expect(ReaderConfig.safeParse({ type: "hid", path: "/dev/hidraw0", extra: 1 }).success).toBe(false);
    expect(ReaderConfig.parse({ type: "hid", vendorId: 1, productId: 2 })).toEqual({
      type: "hid",
      vendorId: 1,
      productId: 2,
      emits: "badge",
      badgeIds: "as-is",
      reportId: false,
      lineTimeoutMs: 500,
      dedupeMs: 1500,
      retryMaxMs: 10_000,
    });
  });
});
