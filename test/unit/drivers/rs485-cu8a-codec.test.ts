// The 0x8A board codec and stream parser against literal bytes: the fixtures (XOR derived by hand,
// several confirmed by public implementations), both status byte orders, other status lengths, and
// a byte stream with noise, truncation, split chunks and bad checksums.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createCu8aParser,
  cu8aReadAll,
  cu8aUnlock,
  cu8aXor,
  decodeCu8a,
  encodeCu8a,
  type Cu8aFrame,
  type Cu8aOptions,
} from "../../../src/drivers/rs485/cu8a-codec.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");

type FixtureFrame = { kind: "unlock" | "query" | "report"; board: number; lock: number; value: number } | { kind: "status"; board: number; locks: number[] };
interface Fixtures {
  frames: { hex: string; meaning: string; frame: FixtureFrame; lowFirst?: FixtureFrame }[];
  invalid: { hex: string; meaning: string; problem: string }[];
}
const fixtures = JSON.parse(readFileSync(new URL("../../fixtures/rs485/board-8a.json", import.meta.url), "utf8")) as Fixtures;

const bits = (set: number[], n = 24) => Array.from({ length: n }, (_, i) => set.includes(i + 1));
const expected = (f: FixtureFrame): Cu8aFrame => (f.kind === "status" ? { kind: "status", board: f.board, locks: bits(f.locks) } : f);
const LOW: Cu8aOptions = { statusBytes: 3, order: "low-first" };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("cu8a codec", () => {
  it.each(fixtures.frames)("fixture $hex: $meaning", (f) => {
    const want = expected(f.frame);
    expect(decodeCu8a(hex(f.hex))).toEqual(want);
    expect(encodeCu8a(want).toString("hex")).toBe(f.hex);
    if (f.lowFirst) {
      const low = expected(f.lowFirst);
      expect(decodeCu8a(hex(f.hex), LOW)).toEqual(low);
      expect(encodeCu8a(low, LOW).toString("hex")).toBe(f.hex);
    }
  });

  it.each(fixtures.invalid)("rejects $hex ($meaning)", (f) => {
    const e = thrown(() => decodeCu8a(hex(f.hex)));
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((e as Error).message).toContain(f.problem);
  });

  it("builds the unlock and read-all frames", () => {
    expect(cu8aUnlock(1, 1)).toEqual(hex("8A 01 01 11 9B"));
    expect(cu8aUnlock(2, 10)).toEqual(hex("8A 02 0A 11 93"));
    expect(cu8aReadAll(1)).toEqual(hex("80 01 00 33 B2"));
    expect(cu8aXor(hex("80 01 FF FF FF 33"))).toBe(0x4d);
    expect(isLockerError(thrown(() => cu8aUnlock(256, 1)), ErrorCode.BadInput)).toBe(true);
  });

  it("reads other status lengths: 1 byte (8 channels) and 7 bytes (50 channels)", () => {
    const one: Cu8aOptions = { statusBytes: 1, order: "high-first" };
    // 80 01 05 33: 80^01^05^33 = B7; with one status byte it is locks 1 and 3.
    expect(decodeCu8a(hex("80 01 05 33 B7"), one)).toEqual({ kind: "status", board: 1, locks: bits([1, 3], 8) });
    const seven: Cu8aOptions = { statusBytes: 7, order: "high-first" };
    const frame: Cu8aFrame = { kind: "status", board: 4, locks: bits([1, 50, 56], 56) };
    const bytes = encodeCu8a(frame, seven);
    // S1 = locks 49-56 (50 and 56: 0x82) ... S7 = locks 1-8 (0x01); 80^04^82^01^33 = 34
    expect(bytes.toString("hex")).toBe("8004" + "82" + "0000000000" + "01" + "33" + "34");
    expect(decodeCu8a(bytes, seven)).toEqual(frame);
  });

  it("round-trips any status in both orders (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom("high-first" as const, "low-first" as const),
        fc.integer({ min: 0, max: 255 }),
        fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }),
        (statusBytes, order, board, all) => {
          const opts = { statusBytes, order };
          const frame: Cu8aFrame = { kind: "status", board, locks: all.slice(0, statusBytes * 8) };
          expect(decodeCu8a(encodeCu8a(frame, opts), opts)).toEqual(frame);
        },
      ),
    );
  });
});

describe("cu8a stream parser", () => {
  const status = "8001ffffff334d";
  const reply = "8a0101008a";

  const run = (p: ReturnType<typeof createCu8aParser>, ...chunks: string[]) => chunks.flatMap((c) => p.push(hex(c)));
  const frames = (items: ReturnType<ReturnType<typeof createCu8aParser>["push"]>) =>
    items.flatMap((x) => (x.kind === "frame" ? [x.raw.toString("hex")] : []));

  it("takes a 5-byte and a 7-byte frame from one chunk, and a split one", () => {
    const p = createCu8aParser();
    expect(frames(run(p, reply + status))).toEqual([reply, status]);
    const bytes = status + reply;
    for (let cut = 1; cut < bytes.length / 2; cut++) {
      const q = createCu8aParser();
      expect(frames(run(q, bytes.slice(0, cut * 2), bytes.slice(cut * 2))), `cut ${cut}`).toEqual([status, reply]);
    }
  });

  it("counts noise, a bad XOR and a truncated read-all answer as discarded", () => {
    const p = createCu8aParser();
    const got = run(p, "ff 55", "8a0101119c", "8001ffff", status);
    expect(frames(got)).toEqual([status]);
    // ff 55 (2) + the bad unlock (5) + the truncated answer (4)
    expect(p.stats.discardedBytes).toBe(11);
    expect(p.stats.frames).toBe(1);
  });

  it("on the board side takes every 0x80 request at 5 bytes", () => {
    const p = createCu8aParser(undefined, "board");
    expect(frames(run(p, "80010033b2"))).toEqual(["80010033b2"]);
  });

  it("waits for the longer read-all answer before taking a 0x80 frame as a 5-byte query", () => {
    const p = createCu8aParser();
    expect(run(p, "8001011191")).toEqual([]);
    expect(frames(run(p, reply))).toEqual(["8001011191", reply]);
    expect(p.stats.discardedBytes).toBe(0);
  });
});
