// The fingerprint module protocol, byte for byte: every command lockerd sends, worked out here from
// the packet layout (EF 01 | address | packet id | length | payload | checksum, checksum = the low
// 16 bits of packet id + length bytes + payload), the acks' data, and the stream parser (noise,
// split chunks, bad checksums, hostile lengths).
import { describe, expect, it } from "vitest";
import {
  ackFits,
  checksum,
  commands,
  Confirm,
  decodeCommand,
  encodeAck,
  encodeCommand,
  encodeIndexTable,
  encodePacket,
  encodeSysPara,
  FingerprintParser,
  MAX_LENGTH,
  parseIndexTable,
  parseSearch,
  parseSysPara,
  parseTemplateCount,
  toAck,
  type Parsed,
} from "../../../src/drivers/readers/fingerprint/codec.js";

const bytes = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");
const ADDR = 0xffffffff;
const packets = (items: Parsed[]) => items.filter((p) => p.kind === "packet").map((p) => (p.kind === "packet" ? p.raw.toString("hex") : ""));
const discards = (items: Parsed[]) => items.flatMap((p) => (p.kind === "discarded" ? [`${p.reason}:${p.bytes.toString("hex")}`] : []));

// Acks used below, each checksum worked out:
// GenImg "no finger": 07 + 00 03 + 02 = 0x0C
const NO_FINGER = bytes("EF01 FFFFFFFF 07 0003 02 000C");
// Search hit, page 5 score 100: 07 + 00 07 + 00 + 00 05 + 00 64 = 0x77
const SEARCH_HIT = bytes("EF01 FFFFFFFF 07 0007 00 0005 0064 0077");

describe("commands", () => {
  // Each: EF 01, address FF FF FF FF, packet id 01, length = payload + 2, payload, checksum.
  const cases: [string, Buffer, string][] = [
    // 01 + 00 03 + 01 = 0x05 (the example every R30x manual and driver starts with)
    ["GenImg", encodeCommand(ADDR, commands.genImg()), "EF01 FFFFFFFF 01 0003 01 0005"],
    // 01 + 00 04 + 02 01 = 0x08
    ["Img2Tz 1", encodeCommand(ADDR, commands.img2Tz(1)), "EF01 FFFFFFFF 01 0004 02 01 0008"],
    // 01 + 00 04 + 02 02 = 0x09
    ["Img2Tz 2", encodeCommand(ADDR, commands.img2Tz(2)), "EF01 FFFFFFFF 01 0004 02 02 0009"],
    // 01 + 00 07 + 13 + 00 00 00 00 = 0x1B
    ["VfyPwd 0", encodeCommand(ADDR, commands.vfyPwd(0)), "EF01 FFFFFFFF 01 0007 13 00000000 001B"],
    // 01 + 00 07 + 13 + 12 34 56 78: 0x1B + 0x12 = 0x2D, + 0x34 = 0x61, + 0x56 = 0xB7, + 0x78 = 0x012F
    ["VfyPwd 0x12345678", encodeCommand(ADDR, commands.vfyPwd(0x12345678)), "EF01 FFFFFFFF 01 0007 13 12345678 012F"],
    // 01 + 00 08 + 04 01 + 00 00 + 00 C8 = 0x01+0x08+0x04+0x01+0xC8 = 0xD6
    ["Search 1, 0, 200", encodeCommand(ADDR, commands.search(1, 0, 200)), "EF01 FFFFFFFF 01 0008 04 01 0000 00C8 00D6"],
    // 01 + 00 03 + 05 = 0x09 (the manuals print 09H)
    ["RegModel", encodeCommand(ADDR, commands.regModel()), "EF01 FFFFFFFF 01 0003 05 0009"],
    // 01 + 00 03 + 03 = 0x07 (the manuals print 07H)
    ["Match", encodeCommand(ADDR, commands.match()), "EF01 FFFFFFFF 01 0003 03 0007"],
    // 01 + 00 06 + 06 01 + 00 05 = 0x13
    ["Store 1 → 5", encodeCommand(ADDR, commands.store(1, 5)), "EF01 FFFFFFFF 01 0006 06 01 0005 0013"],
    // 01 + 00 06 + 06 01 + 01 2C (page 300) = 0x01+0x06+0x06+0x01+0x01+0x2C = 0x3B
    ["Store 1 → 300", encodeCommand(ADDR, commands.store(1, 300)), "EF01 FFFFFFFF 01 0006 06 01 012C 003B"],
    // 01 + 00 07 + 0C + 00 05 + 00 02 = 0x1B
    ["DeletChar 5, 2", encodeCommand(ADDR, commands.deletChar(5, 2)), "EF01 FFFFFFFF 01 0007 0C 0005 0002 001B"],
    // 01 + 00 03 + 0D = 0x11 (the manuals print 0011H)
    ["Empty", encodeCommand(ADDR, commands.empty()), "EF01 FFFFFFFF 01 0003 0D 0011"],
    // 01 + 00 03 + 0F = 0x13
    ["ReadSysPara", encodeCommand(ADDR, commands.readSysPara()), "EF01 FFFFFFFF 01 0003 0F 0013"],
    // 01 + 00 03 + 1D = 0x21 (the manuals print 0021H)
    ["TempleteNum", encodeCommand(ADDR, commands.templeteNum()), "EF01 FFFFFFFF 01 0003 1D 0021"],
    // 01 + 00 04 + 1F 01 = 0x25
    ["ReadIndexTable 1", encodeCommand(ADDR, commands.readIndexTable(1)), "EF01 FFFFFFFF 01 0004 1F 01 0025"],
    // 01 + 00 03 + 40 = 0x44
    ["HandShake", encodeCommand(ADDR, commands.handShake()), "EF01 FFFFFFFF 01 0003 40 0044"],
    // Another address changes the header only: the checksum does not cover it.
    ["GenImg @12345678", encodeCommand(0x12345678, commands.genImg()), "EF01 12345678 01 0003 01 0005"],
  ];
  it.each(cases)("%s", (_name, got, want) => {
    expect(got.toString("hex")).toBe(bytes(want).toString("hex"));
  });

  it("are read back by the module side", () => {
    expect(decodeCommand(commands.vfyPwd(0x12345678).payload)).toEqual({ name: "VfyPwd", password: 0x12345678 });
    expect(decodeCommand(commands.search(2, 10, 300).payload)).toEqual({ name: "Search", buffer: 2, start: 10, count: 300 });
    expect(decodeCommand(commands.store(1, 300).payload)).toEqual({ name: "Store", buffer: 1, page: 300 });
    expect(decodeCommand(commands.deletChar(5, 2).payload)).toEqual({ name: "DeletChar", page: 5, count: 2 });
    expect(decodeCommand(commands.readIndexTable(3).payload)).toEqual({ name: "ReadIndexTable", index: 3 });
    expect(decodeCommand(commands.genImg().payload)).toEqual({ name: "GenImg" });
    expect(decodeCommand(bytes("77"))).toEqual({ name: "unknown", code: 0x77 });
    // Search without its five parameter bytes
    expect(decodeCommand(bytes("04 01 00"))).toEqual({ name: "malformed", code: 0x04 });
  });

  it("refuse parameters the protocol cannot carry", () => {
    expect(() => commands.img2Tz(0)).toThrow(RangeError);
    expect(() => commands.readIndexTable(4)).toThrow(RangeError);
    expect(() => commands.deletChar(0, 0)).toThrow(RangeError);
    expect(() => commands.store(1, 0x10000)).toThrow(RangeError);
    expect(() => commands.vfyPwd(-1)).toThrow(RangeError);
    expect(() => encodePacket({ address: ADDR, pid: 2, payload: Buffer.alloc(257) })).toThrow(RangeError);
  });
});

describe("acks", () => {
  it("are encoded as the module sends them", () => {
    expect(encodeAck(ADDR, Confirm.NoFinger).toString("hex")).toBe(NO_FINGER.toString("hex"));
    expect(encodeAck(ADDR, Confirm.Ok, bytes("0005 0064")).toString("hex")).toBe(SEARCH_HIT.toString("hex"));
  });

  it("Search: page and score; 09 is no match", () => {
    const [hit] = new FingerprintParser().push(SEARCH_HIT);
    const ack = hit?.kind === "packet" ? toAck(hit.packet) : undefined;
    expect(ack?.code).toBe(0);
    expect(parseSearch(ack!)).toEqual({ page: 5, score: 100 });
    // 07 + 00 07 + 09 + 0000 0000 = 0x17
    const miss = bytes("EF01 FFFFFFFF 07 0007 09 0000 0000 0017");
    const [m] = new FingerprintParser().push(miss);
    expect(m?.kind).toBe("packet");
    expect(parseSearch(toAck((m as Extract<Parsed, { kind: "packet" }>).packet)!)).toBeUndefined();
  });

  it("ReadSysPara: the 16 parameter bytes", () => {
    // status 0004 (password verified), system id 0009, library 00C8 (200), security 0003, address
    // FFFFFFFF, packet size code 0002 (128 bytes), baud N 0006 (57600). Checksum: 07 + 00 13 + 00 +
    // 04 + 09 + C8 + 03 + 4×FF + 02 + 06 = 0x04F6
    const raw = bytes("EF01 FFFFFFFF 07 0013 00 0004 0009 00C8 0003 FFFFFFFF 0002 0006 04F6");
    const [p] = new FingerprintParser().push(raw);
    expect(p?.kind).toBe("packet");
    const ack = toAck((p as Extract<Parsed, { kind: "packet" }>).packet)!;
    expect(parseSysPara(ack)).toEqual({ status: 4, systemId: 9, librarySize: 200, securityLevel: 3, address: 0xffffffff, packetSize: 128, baudRate: 57600 });
    expect(encodeAck(ADDR, 0, encodeSysPara({ status: 4, systemId: 9, librarySize: 200, securityLevel: 3, address: ADDR, packetSizeCode: 2, baudN: 6 }))).toEqual(raw);
    expect(parseSysPara({ code: 0x01, data: Buffer.alloc(0) })).toBeUndefined();
  });

  it("ReadIndexTable: byte k holds slots 8k..8k+7, the lowest in bit 0", () => {
    // slots 0 and 7 → byte 0 = 1000 0001 = 81; slot 8 → byte 1 = 01; slot 255 → byte 31 = 80
    const data = encodeIndexTable([0, 7, 8, 255, 256], 0);
    expect(data.toString("hex")).toBe(`8101${"00".repeat(29)}80`);
    expect(parseIndexTable({ code: 0, data }, 0)).toEqual([0, 7, 8, 255]);
    // page 1 holds 256..511: slot 256 is bit 0 of byte 0
    expect(parseIndexTable({ code: 0, data: encodeIndexTable([256, 300], 1) }, 1)).toEqual([256, 300]);
    // the whole table full: 07 + 00 23 + 00 + 32 × FF (0x1FE0) = 0x200A
    const full = encodeAck(ADDR, 0, Buffer.alloc(32, 0xff));
    expect(full.subarray(-2).toString("hex")).toBe("200a");
    expect(checksum(0x07, Buffer.concat([Buffer.from([0]), Buffer.alloc(32, 0xff)]))).toBe(0x200a);
  });

  it("TempleteNum: the count", () => {
    expect(parseTemplateCount({ code: 0, data: bytes("0102") })).toBe(258);
  });

  it("an ack fits its command by its data length; a failed one may be the bare code", () => {
    expect(ackFits("Search", { code: 0, data: bytes("0005 0064") })).toBe(true);
    expect(ackFits("Search", { code: 9, data: bytes("0000 0000") })).toBe(true);
    expect(ackFits("Search", { code: 0x21, data: Buffer.alloc(0) })).toBe(true);
    // GenImg's late "00" is no answer to a Search, nor a Search's answer to GenImg
    expect(ackFits("Search", { code: 0, data: Buffer.alloc(0) })).toBe(false);
    expect(ackFits("GenImg", { code: 0, data: bytes("0005 0064") })).toBe(false);
    expect(ackFits("ReadSysPara", { code: 0, data: Buffer.alloc(16) })).toBe(true);
  });
});

describe("the stream parser", () => {
  it("finds packets after noise, and keeps a trailing EF for the next chunk", () => {
    const p = new FingerprintParser();
    const items = p.push(Buffer.concat([bytes("00 55 EF"), NO_FINGER, bytes("12 EF")]));
    expect(discards(items)).toEqual(["garbage:0055ef", "garbage:12"]);
    expect(packets(items)).toEqual([NO_FINGER.toString("hex")]);
    expect(p.pending).toBe(1);
    expect(packets(p.push(SEARCH_HIT.subarray(1)))).toEqual([SEARCH_HIT.toString("hex")]);
    expect(p.pending).toBe(0);
  });

  it("assembles a packet split into single bytes", () => {
    const p = new FingerprintParser();
    const out: Parsed[] = [];
    for (const b of SEARCH_HIT) out.push(...p.push(Buffer.from([b])));
    expect(packets(out)).toEqual([SEARCH_HIT.toString("hex")]);
    expect(discards(out)).toEqual([]);
  });

  it("drops a packet whose checksum does not add up, counts it, and reads the next one", () => {
    const bad = Buffer.from(SEARCH_HIT);
    bad[bad.length - 1] = 0x78; // 0x0078 instead of 0x0077
    const p = new FingerprintParser();
    const items = p.push(Buffer.concat([bad, NO_FINGER]));
    expect(discards(items)).toEqual([`checksum:${bad.toString("hex")}`]);
    expect(packets(items)).toEqual([NO_FINGER.toString("hex")]);
    expect(p.stats).toEqual({ packets: 1, badChecksums: 1, discardedBytes: bad.length });
  });

  it("a header in noise that swallows a real packet gives it back", () => {
    // A false header claiming 16 more bytes (length 0x10), then a real ack, then 4 noise bytes:
    // the 25 bytes do not add up, and the real packet is found at the header inside them.
    const fake = bytes("EF01 FFFFFFFF 07 0010");
    const p = new FingerprintParser();
    const items = p.push(Buffer.concat([fake, NO_FINGER, bytes("01020304")]));
    expect(discards(items)).toEqual([`checksum:${fake.toString("hex")}`, "garbage:01020304"]);
    expect(packets(items)).toEqual([NO_FINGER.toString("hex")]);
  });

  it("never waits for a hostile length or an unknown packet id", () => {
    const p = new FingerprintParser();
    // length FFFF: not waited for (that would hold 64 KB), the EF is skipped and the rest is noise
    let items = p.push(bytes("EF01 FFFFFFFF 07 FFFF 00"));
    expect(discards(items)).toEqual(["bad header:ef", "garbage:01ffffffff07ffff00"]);
    expect(p.pending).toBe(0);
    // one more than the largest data packet (256 + 2 = 0x0102)
    items = p.push(bytes("EF01 FFFFFFFF 02 0103"));
    expect(discards(items)[0]).toBe("bad header:ef");
    // length 2 (no payload) and packet id 05 are no packets either
    expect(discards(p.push(bytes("EF01 FFFFFFFF 07 0002")))[0]).toBe("bad header:ef");
    expect(discards(p.push(bytes("EF01 FFFFFFFF 05 0003 00")))[0]).toBe("bad header:ef");
    expect(p.pending).toBe(0);
    // the largest legal length is waited for, and no more is held than that packet
    p.push(bytes("EF01 FFFFFFFF 02 0102"));
    p.push(Buffer.alloc(200));
    expect(p.pending).toBe(9 + 200);
    const items2 = p.push(Buffer.concat([Buffer.alloc(MAX_LENGTH - 200), NO_FINGER]));
    // 200 + 58 zero bytes: the last two are the (wrong) checksum
    expect(discards(items2).map((d) => d.split(":")[0])).toEqual(["checksum"]);
    expect(packets(items2)).toEqual([NO_FINGER.toString("hex")]);
  });

  it("a flood of noise is dropped as it comes", () => {
    const p = new FingerprintParser();
    const items = p.push(Buffer.alloc(100_000, 0x01));
    expect(items).toHaveLength(1);
    expect(p.pending).toBe(0);
    expect(p.stats.discardedBytes).toBe(100_000);
  });

  it("flush gives up a packet in progress", () => {
    const p = new FingerprintParser();
    p.push(SEARCH_HIT.subarray(0, 10));
    expect(discards(p.flush())).toEqual([`garbage:${SEARCH_HIT.subarray(0, 10).toString("hex")}`]);
    expect(packets(p.push(NO_FINGER))).toEqual([NO_FINGER.toString("hex")]);
  });
});
