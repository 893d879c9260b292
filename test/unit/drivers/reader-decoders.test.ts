// The pure reader codecs against hand-derived fixtures (test/fixtures/readers/): boot-keyboard
// reports, RDM6300 frames, Wiegand 26/34 with their parities; and the shared pieces every reader
// uses: dedupe (fake clock), badge ids, keypad bytes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Dedupe } from "../../../src/drivers/readers/dedupe.js";
import { BootKeyboardDecoder, keyReport, typeReports } from "../../../src/drivers/readers/keyboard.js";
import { badgeId } from "../../../src/drivers/readers/output.js";
import { decodeRdm6300Frame, Rdm6300Parser, rdm6300Frame, type Rdm6300Item } from "../../../src/drivers/readers/rdm6300.js";
import { decodeKeypadBytes } from "../../../src/drivers/readers/serial.js";
import { decodeWiegand, encodeWiegand, wiegandLineId } from "../../../src/drivers/readers/wiegand.js";
import { isLockerError } from "../../../src/errors.js";
import { ROOT } from "../../helpers/daemon.js";

const fixture = <T>(name: string) => JSON.parse(readFileSync(join(ROOT, "test/fixtures/readers", name), "utf8")) as T;
const hid = fixture<{ captures: { name: string; reportId: boolean; reports: string[]; lines: string[]; malformed: number }[] }>("hid-reports.json");
const rdm = fixture<{ good: { hex: string; full: string; card: string }[]; bad: { hex: string; reason: string }[] }>("rdm6300.json");
const wg = fixture<{ good: { bits: string; facility: number | null; card: number; id: string }[]; bad: { bits: string; reason: string }[] }>("wiegand.json");
const hex = (h: string) => Buffer.from(h.replace(/\s/g, ""), "hex");

describe("boot-keyboard reports", () => {
  it.each(hid.captures)("$name", (c) => {
    const d = new BootKeyboardDecoder({ reportId: c.reportId });
    expect(c.reports.flatMap((r) => d.feed(hex(r)))).toEqual(c.lines);
    expect(d.malformed).toBe(c.malformed);
  });

  it("types shifted digits as symbols, and keeps a held key counted once across reports", () => {
    const d = new BootKeyboardDecoder({ reportId: false });
    expect([hex("0200200000000000"), hex("0200200000000000"), keyReport(0), keyReport(0x28)].flatMap((r) => d.feed(r))).toEqual(["#"]);
  });

  it("without the report ID option, 9-byte reports are malformed, not misread", () => {
    const d = new BootKeyboardDecoder({ reportId: false });
    expect(typeReports("12", 1).flatMap((r) => d.feed(r))).toEqual([]);
    expect(d.malformed).toBe(6);
  });

  it("drops a line longer than maxLine whole, instead of cutting it into another id", () => {
    const d = new BootKeyboardDecoder({ reportId: false, maxLine: 4 });
    expect(typeReports("123456").flatMap((r) => d.feed(r))).toEqual([]);
    expect(d.overlong).toBe(1);
    expect(typeReports("1234").flatMap((r) => d.feed(r))).toEqual(["1234"]);
  });

  it("encodes what it decodes (the emulator's typing), including report IDs", () => {
    const text = "L:04a1B2c3-_.#/";
    const d = new BootKeyboardDecoder({ reportId: true });
    expect(typeReports(text, 3).flatMap((r) => d.feed(r))).toEqual([text]);
  });
});

describe("RDM6300 frames", () => {
  it.each(rdm.good)("reads card $card from $hex", (f) => {
    expect(decodeRdm6300Frame(hex(f.hex))).toEqual({ kind: "tag", full: f.full, card: f.card });
  });

  it("builds the fixture frames from their data (upper-case digits)", () => {
    expect(rdm6300Frame("0F00123456")).toEqual(hex(rdm.good[0]!.hex));
    expect(rdm6300Frame("1A04A1B2C3")).toEqual(hex(rdm.good[1]!.hex));
  });

  it.each(rdm.bad)("refuses $hex: $reason", (f) => {
    expect(decodeRdm6300Frame(hex(f.hex))).toMatchObject({ kind: "discarded", reason: f.reason });
  });

  it("finds frames in any chunking; garbage, truncated, bad-checksum and malformed frames come out as discarded items", () => {
    const good = hex(rdm.good[1]!.hex);
    const badSum = hex(rdm.bad[0]!.hex);
    const noEtx = hex(rdm.bad[2]!.hex);
    const stream = Buffer.concat([hex("ff00 0d0a"), good.subarray(0, 8), good, badSum, hex("03"), noEtx, good]);
    for (const size of [1, 3, 14, stream.length]) {
      const p = new Rdm6300Parser();
      const items: Rdm6300Item[] = [];
      for (let i = 0; i < stream.length; i += size) items.push(...p.push(stream.subarray(i, i + size)));
      const summary = items.map((i) => (i.kind === "tag" ? i.card : `${i.reason}:${i.bytes.length}`));
      expect(summary, `chunks of ${size}`).toEqual(["garbage:4", "truncated:8", "04A1B2C3", "checksum:14", "garbage:1", "malformed:14", "04A1B2C3"]);
    }
  });

  it("keeps a frame cut at the end of a chunk for the next one, and forgets it on reset()", () => {
    const p = new Rdm6300Parser();
    const good = hex(rdm.good[0]!.hex);
    expect(p.push(good.subarray(0, 10))).toEqual([]);
    expect(p.push(good.subarray(10))).toEqual([{ kind: "tag", full: "0F00123456", card: "00123456" }]);
    p.push(good.subarray(0, 10));
    p.reset();
    expect(p.push(good.subarray(10))).toEqual([]); // garbage, reported when the next frame starts
    expect(p.push(good)).toEqual([
      { kind: "discarded", reason: "garbage", bytes: good.subarray(10) },
      { kind: "tag", full: "0F00123456", card: "00123456" },
    ]);
    expect(new Rdm6300Parser().push(Buffer.alloc(64, 0x41))).toMatchObject([{ kind: "discarded", reason: "garbage" }]);
  });
});

describe("Wiegand", () => {
  it.each(wg.good)("decodes $bits to $id", (f) => {
    expect(decodeWiegand(f.bits)).toEqual({ bits: f.bits.length, facility: f.facility, card: f.card, id: f.id });
    expect(encodeWiegand(f.bits.slice(1, -1))).toBe(f.bits);
    expect(wiegandLineId(` ${f.bits}\r`, "bits")).toEqual({ id: f.id });
  });

  it.each(wg.bad)("refuses $bits: $reason", (f) => {
    let err: unknown;
    try {
      decodeWiegand(f.bits);
    } catch (e) {
      err = e;
    }
    expect(isLockerError(err) && err.context.reason).toBe(f.reason);
    expect(wiegandLineId(f.bits, "bits")).toEqual({ reason: `wiegand ${f.reason}` });
  });

  it("takes a converter's decimal or hex card number as it is", () => {
    expect(wiegandLineId("0077705923", "decimal")).toEqual({ id: "0077705923" });
    expect(wiegandLineId("04a1b2c3", "hex")).toEqual({ id: "04A1B2C3" });
    expect(wiegandLineId("0x121234", "hex")).toEqual({ id: "121234" });
    expect(wiegandLineId("12ab", "decimal")).toEqual({ reason: "not a number" });
    expect(wiegandLineId("xyz", "hex")).toEqual({ reason: "not a number" });
  });
});

describe("dedupe, badge ids, keypad bytes", () => {
  it("counts the same tag once while it keeps being read within the window, and again after a gap", () => {
    let t = 0;
    const d = new Dedupe(1500, () => t);
    expect(d.accept("A")).toBe(true);
    t = 100;
    expect(d.accept("A")).toBe(false);
    t = 1500; // 1400 ms after the last sighting: still the same presentation (the window slides)
    expect(d.accept("A")).toBe(false);
    t = 1600;
    expect(d.accept("B")).toBe(true);
    t = 1700;
    expect(d.accept("A")).toBe(true); // another tag came between
    t = 3200;
    expect(d.accept("A")).toBe(true); // 1500 ms of quiet
    expect(new Dedupe(0, () => t).accept("A")).toBe(true);
  });

  it("makes badge ids hex upper-case, converts decimal card numbers when asked, refuses the rest", () => {
    expect(badgeId(" 04a1b2c3 ")).toBe("04A1B2C3");
    expect(badgeId("0077705923")).toBe("0077705923");
    expect(badgeId("0077705923", "decimal-to-hex")).toBe("04A1B2C3");
    for (const bad of ["", "123", "04A1-B2C3", "G4A1B2C3", "0".repeat(33)]) expect(badgeId(bad), bad).toBeUndefined();
    expect(badgeId("12ab", "decimal-to-hex")).toBeUndefined();
  });

  it("takes 0-9 * # from a keypad, ignores CR/LF, counts other bytes as noise", () => {
    expect(decodeKeypadBytes(Buffer.from("12*#\r\n"))).toEqual({ keys: "12*#", noise: 0 });
    expect(decodeKeypadBytes(Buffer.from([0x31, 0xff, 0x41, 0x23]))).toEqual({ keys: "1#", noise: 2 });
  });
});
