// The pure reader codecs against hand-derived fixtures (test/fixtures/readers/readers.json):
// boot-keyboard reports, RDM6300 frames, Wiegand 26/34 with their parities, dedupe.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Dedupe } from "../../../src/drivers/readers/dedupe.js";
import { BootKeyboardDecoder, keyReport, typeReports } from "../../../src/drivers/readers/keyboard.js";
import { decimalToHex } from "../../../src/drivers/readers/lines.js";
import { Rdm6300Parser, rdm6300Frame } from "../../../src/drivers/readers/rdm6300.js";
import { decodeWiegand, encodeWiegand } from "../../../src/drivers/readers/wiegand.js";
import { ROOT } from "../../helpers/daemon.js";

const fx = JSON.parse(readFileSync(join(ROOT, "test/fixtures/readers/readers.json"), "utf8")) as {
  rdm6300: { hex: string; card: string; full: string }[];
  wiegand: { bits: string; facility: number | null; card: number; id: string }[];
  hid: { reports: string[]; line: string }[];
};
const hex = (h: string) => Buffer.from(h, "hex");

describe("boot-keyboard reports", () => {
  it.each(fx.hid)("decodes %#", (f) => {
    const d = new BootKeyboardDecoder({ reportId: false });
    expect(f.reports.flatMap((r) => d.feed(hex(r)))).toEqual([f.line]);
  });

  it("counts a held key once (rollover), types shifted digits as symbols, ends lines on keypad Enter", () => {
    const d = new BootKeyboardDecoder({ reportId: false });
    // '1' held across three reports, then '2' added: "12"
    expect([keyReport(0x1e), keyReport(0x1e), hex("00001e1f00000000"), keyReport(0x58)].flatMap((r) => d.feed(r))).toEqual(["12"]);
    expect([keyReport(0x1e, true), keyReport(0), keyReport(0x28)].flatMap((r) => d.feed(r))).toEqual(["!"]);
  });

  it("skips the report ID byte when configured, ignores rollover-error and short reports", () => {
    const d = new BootKeyboardDecoder({ reportId: true });
    const withId = typeReports("C0FFEE01").map((r) => Buffer.concat([Buffer.from([1]), r]));
    expect(withId.flatMap((r) => d.feed(r))).toEqual(["C0FFEE01"]);
    const plain = new BootKeyboardDecoder({ reportId: false });
    expect(plain.feed(hex("0000010101010101"))).toEqual([]);
    expect(plain.feed(hex("0000"))).toEqual([]);
    expect(plain.malformed).toBe(1);
    expect(plain.feed(keyReport(0x28))).toEqual([]); // Enter with nothing typed: no empty line
  });
});

describe("RDM6300 frames", () => {
  it.each(fx.rdm6300)("reads card $card from the fixture frame", (f) => {
    expect(rdm6300Frame(f.full).toString("hex")).toBe(f.hex);
    expect(new Rdm6300Parser().push(hex(f.hex))).toEqual([{ full: f.full, card: f.card }]);
  });

  it("finds frames in any chunking, and counts garbage, bad checksums and truncated frames as discarded", () => {
    const p = new Rdm6300Parser();
    const good = hex(fx.rdm6300[0]!.hex);
    const bad = Buffer.from(good);
    bad[11] = 0x30; // checksum digit changed
    const truncated = good.subarray(0, 8);
    const stream = Buffer.concat([Buffer.from("xx"), truncated, good, bad, Buffer.from([0xff]), good]);
    const reads = [];
    for (let i = 0; i < stream.length; i += 3) reads.push(...p.push(stream.subarray(i, i + 3)));
    expect(reads.map((r) => r.card)).toEqual([fx.rdm6300[0]!.card, fx.rdm6300[0]!.card]);
    expect(p.badChecksums).toBe(1);
    expect(p.discarded).toBe(2 + 1 + 14 + 1 + (truncated.length - 1));
  });
});

describe("Wiegand", () => {
  it.each(fx.wiegand)("decodes $bits.length bits to $id", (f) => {
    expect(decodeWiegand(f.bits)).toMatchObject({ facility: f.facility, card: f.card, id: f.id });
    expect(encodeWiegand(f.bits.slice(1, -1))).toBe(f.bits);
  });

  it("refuses a flipped parity or data bit, and other lengths", () => {
    for (const f of fx.wiegand) {
      for (const i of [0, 5, f.bits.length - 1]) {
        const flipped = f.bits.slice(0, i) + (f.bits[i] === "1" ? "0" : "1") + f.bits.slice(i + 1);
        expect(() => decodeWiegand(flipped)).toThrow(/parity/);
      }
    }
    expect(() => decodeWiegand("1".repeat(30))).toThrow(/30 bits/);
    expect(() => decodeWiegand("10x1")).toThrow();
  });
});

describe("dedupe and badge ids", () => {
  it("counts the same tag once within the window, and again after it", () => {
    let t = 0;
    const d = new Dedupe(1500, () => t);
    expect(d.accept("A")).toBe(true);
    t = 100;
    expect(d.accept("A")).toBe(false);
    t = 200;
    expect(d.accept("B")).toBe(true);
    t = 300;
    expect(d.accept("A")).toBe(true);
    t = 1900;
    expect(d.accept("A")).toBe(true);
  });

  it("turns a decimal card number into the hex id", () => {
    expect(decimalToHex("77705923")).toBe("04A1B2C3");
    expect(decimalToHex("12ab")).toBeUndefined();
  });
});
