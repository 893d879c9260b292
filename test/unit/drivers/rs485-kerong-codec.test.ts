// The Kerong KR-CU16 codec and stream parser against literal bytes: the fixtures (each derived by
// hand from the checksum rule), round trips, and a byte stream with noise, truncated frames, split
// chunks and bad checksums, whose discarded bytes are counted.
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  createKerongParser,
  decodeKerong,
  encodeKerong,
  kerongReadStatus,
  kerongSum,
  kerongUnlock,
  type KerongFrame,
} from "../../../src/drivers/rs485/kerong-codec.js";
import { ErrorCode, isLockerError } from "../../../src/errors.js";

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");

interface FixtureFrame {
  hex: string;
  meaning: string;
  frame: { kind: "command"; board: number; lock: number; command: number } | { kind: "status"; board: number; locks: number[]; items: number[] };
}
interface Fixtures {
  frames: FixtureFrame[];
  invalid: { hex: string; meaning: string; problem: string }[];
}
const fixtures = JSON.parse(readFileSync(new URL("../../fixtures/rs485/kerong.json", import.meta.url), "utf8")) as Fixtures;

/** Lock numbers with their bit set → the codec's 16 booleans. */
const bits = (set: number[]) => Array.from({ length: 16 }, (_, i) => set.includes(i + 1));
const expected = (f: FixtureFrame["frame"]): KerongFrame =>
  f.kind === "command" ? f : { kind: "status", board: f.board, locks: bits(f.locks), items: bits(f.items) };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("kerong codec", () => {
  it.each(fixtures.frames)("fixture $hex: $meaning", (f) => {
    const want = expected(f.frame);
    expect(decodeKerong(hex(f.hex))).toEqual(want);
    expect(encodeKerong(want).toString("hex")).toBe(f.hex);
  });

  it.each(fixtures.invalid)("rejects $hex ($meaning)", (f) => {
    const e = thrown(() => decodeKerong(hex(f.hex)));
    expect(isLockerError(e, ErrorCode.HardwareUnavailable)).toBe(true);
    expect((e as Error).message).toContain(f.problem);
  });

  it("builds the unlock and read-status frames from board and lock", () => {
    expect(kerongUnlock(0, 1)).toEqual(hex("02 00 31 03 36"));
    expect(kerongUnlock(1, 3)).toEqual(hex("02 12 31 03 48"));
    expect(kerongUnlock(15, 16)).toEqual(hex("02 FF 31 03 35"));
    expect(kerongReadStatus(0)).toEqual(hex("02 00 30 03 35"));
    expect(kerongReadStatus(1)).toEqual(hex("02 10 30 03 45"));
    expect(kerongSum(hex("02 10 35 FE FF 04 80 03"))).toBe(0xcb);
  });

  it("refuses boards and locks outside the nibbles", () => {
    for (const [board, lock] of [[16, 1], [-1, 1], [0, 0], [0, 17], [0, 1.5]] as const) {
      expect(isLockerError(thrown(() => kerongUnlock(board, lock)), ErrorCode.BadInput), `${board}/${lock}`).toBe(true);
    }
  });

  it("round-trips every unlock and any status", () => {
    for (let board = 0; board < 16; board++) {
      for (let lock = 1; lock <= 16; lock++) {
        expect(decodeKerong(kerongUnlock(board, lock))).toEqual({ kind: "command", board, lock, command: 0x31 });
      }
    }
    const sixteen = fc.array(fc.boolean(), { minLength: 16, maxLength: 16 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), sixteen, sixteen, (board, locks, items) => {
        const frame: KerongFrame = { kind: "status", board, locks, items };
        expect(decodeKerong(encodeKerong(frame))).toEqual(frame);
      }),
    );
  });
});

describe("kerong stream parser", () => {
  const unlock = "0200310336";
  const status = "021035feff048003cb";

  const frames = (items: ReturnType<ReturnType<typeof createKerongParser>["push"]>) =>
    items.flatMap((p) => (p.kind === "frame" ? [p.raw.toString("hex")] : []));
  const discards = (items: ReturnType<ReturnType<typeof createKerongParser>["push"]>) =>
    items.flatMap((p) => (p.kind === "discarded" ? [{ bytes: p.bytes.toString("hex"), reason: p.reason }] : []));

  it("takes two frames from one chunk", () => {
    const p = createKerongParser();
    expect(frames(p.push(hex(unlock + status)))).toEqual([unlock, status]);
    expect(p.stats).toEqual({ frames: 2, discardedBytes: 0, discards: 0 });
  });

  it("joins a frame split at every possible point", () => {
    const bytes = hex(status + unlock);
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = createKerongParser();
      const got = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut))];
      expect(frames(got), `cut at ${cut}`).toEqual([status, unlock]);
      expect(p.stats.discardedBytes).toBe(0);
    }
  });

  it("feeds one byte at a time", () => {
    const p = createKerongParser();
    const got = [...hex(status + status)].flatMap((b) => p.push(Uint8Array.of(b)));
    expect(frames(got)).toEqual([status, status]);
  });

  it("discards leading noise, including a stray STX, as one counted run", () => {
    const p = createKerongParser();
    const got = p.push(hex("ff 02 13 55" + status));
    expect(frames(got)).toEqual([status]);
    expect(discards(got)).toEqual([{ bytes: "ff021355", reason: "no STX" }]);
    expect(p.stats).toEqual({ frames: 1, discardedBytes: 4, discards: 1 });
  });

  it("resynchronises after a truncated status frame", () => {
    const p = createKerongParser();
    const got = p.push(hex("02 10 35 fe" + status));
    expect(frames(got)).toEqual([status]);
    expect(p.stats.discardedBytes).toBe(4);
  });

  it("counts a frame with a bad checksum as discarded and keeps the next one", () => {
    const p = createKerongParser();
    const got = p.push(hex("0200310337" + unlock));
    expect(frames(got)).toEqual([unlock]);
    expect(discards(got)).toEqual([{ bytes: "0200310337", reason: "bad checksum" }]);
    expect(p.stats.discardedBytes).toBe(5);
  });

  it("holds a partial frame, and flush() counts it when it never completes", () => {
    const p = createKerongParser();
    expect(p.push(hex("02 10 35 fe ff"))).toEqual([]);
    expect(p.pending).toBe(5);
    const got = p.flush();
    expect(discards(got)).toEqual([{ bytes: "021035feff", reason: "truncated frame" }]);
    expect(p.stats).toEqual({ frames: 0, discardedBytes: 5, discards: 1 });
    expect(p.flush()).toEqual([]);
  });

  it("never loses a valid frame behind arbitrary noise (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 20 }), fc.integer({ min: 1, max: 30 }), (noise, chunk) => {
        const p = createKerongParser();
        // Noise ending in a partial frame head could swallow the first frame byte; a gap of
        // non-STX bytes keeps the noise from overlapping the frame, as the bus's idle time does.
        const bytes = Buffer.concat([noise, hex("ff ff ff ff ff ff ff ff"), hex(status)]);
        const out = [];
        for (let i = 0; i < bytes.length; i += chunk) out.push(...p.push(bytes.subarray(i, i + chunk)));
        out.push(...p.flush());
        expect(frames(out).at(-1)).toBe(status);
        const discarded = out.reduce((n, x) => n + (x.kind === "discarded" ? x.bytes.length : 0), 0);
        const framed = out.reduce((n, x) => n + (x.kind === "frame" ? x.raw.length : 0), 0);
        expect(discarded + framed).toBe(bytes.length);
        expect(p.stats.discardedBytes).toBe(discarded);
      }),
    );
  });
});
