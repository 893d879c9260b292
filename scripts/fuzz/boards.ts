// Board frames: random bytes and mutated valid frames into the Kerong and 0x8A stream parsers
// (host and board side, every status layout), and host bytes into the board emulators whose
// answers (with noise and faults) go back through the host parser: the bus without its port.
//
//   input (random | valid frames | valid frames mutated) ─┬─ whole ─▶ parser ─▶ items + flush
//                                                          └─ in 1-4 chunks ─▶ parser ─▶ items + flush
//   - nothing throws
//   - every byte accounted for: the items' bytes, in order, are the input exactly
//   - every frame re-decodes (decodeKerong / decodeCu8a) to itself: no bad checksum gets through
//   - chunking changes nothing: the same frames, the same number of discarded bytes
//   - unmutated valid frames come out as exactly those frames
//
//   emulator: host bytes ─▶ KerongEmulator / Cu8aEmulator (faults, noise) ─▶ tx ─▶ host parser (same checks)
import { CU8A_QUERY_FN, CU8A_UNLOCK_FN, createCu8aParser, decodeCu8a, encodeCu8a, type Cu8aFrame, type Cu8aOptions, type Cu8aSide } from "../../src/drivers/rs485/cu8a-codec.js";
import { applyControl, BOARD_FAULTS, Cu8aEmulator, KerongEmulator } from "../../src/drivers/rs485/emulator.js";
import { createKerongParser, decodeKerong, encodeKerong, KerongCommand, type KerongFrame } from "../../src/drivers/rs485/kerong-codec.js";
import type { FrameParser, Parsed } from "../../src/drivers/rs485/parser.js";
import { describeError, show, Tally, type FuzzReport } from "./report.js";
import { Rng } from "./rng.js";

export interface BoardsFuzzOptions {
  inputs: number;
  seed: number;
}

interface Family<F> {
  name: string;
  parser: () => FrameParser<F>;
  decode: (raw: Buffer) => F;
  /** A random valid frame this side reads. */
  frame: (rng: Rng) => Buffer;
}

const bits = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.chance(0.5));
/**
 * A 5-byte Kerong frame with command byte 0x35 cannot exist: 0x35 makes the framer expect a 9-byte
 * status (encodeKerong builds one all the same; a codec nit in the report, not a stream fault).
 */
const notStatus = (command: number) => (command === KerongCommand.Status ? KerongCommand.ReadStatus : command);

function kerong(): Family<KerongFrame> {
  return {
    name: "kerong",
    parser: createKerongParser,
    decode: decodeKerong,
    frame: (rng) =>
      rng.chance(0.5)
        ? encodeKerong({ kind: "status", board: rng.int(0, 15), locks: bits(rng, 16), items: bits(rng, 16) })
        : encodeKerong({ kind: "command", board: rng.int(0, 15), lock: rng.int(1, 16), command: rng.pick([KerongCommand.ReadStatus, KerongCommand.Unlock, KerongCommand.UnlockAll, notStatus(rng.int(0, 255))]) }),
  };
}

function cu8a(opts: Cu8aOptions, side: Cu8aSide): Family<Cu8aFrame> {
  const byte = (rng: Rng) => rng.int(0, 255);
  return {
    name: `cu8a-${side}-${opts.statusBytes}-${opts.order}`,
    parser: () => createCu8aParser(opts, side),
    decode: (raw) => decodeCu8a(raw, opts),
    frame: (rng) => {
      // The host reads answers (a lone 5-byte 0x80 answer is ambiguous there by design, board-8a.md:
      // lockerd never asks for one); a board reads 5-byte requests.
      if (side === "board") {
        return rng.chance(0.5)
          ? encodeCu8a({ kind: "unlock", board: byte(rng), lock: byte(rng), value: rng.chance(0.8) ? CU8A_UNLOCK_FN : byte(rng) }, opts)
          : encodeCu8a({ kind: "query", board: byte(rng), lock: rng.chance(0.5) ? 0 : byte(rng), value: CU8A_QUERY_FN }, opts);
      }
      return rng.weighted<() => Buffer>([
        [2, () => encodeCu8a({ kind: "status", board: byte(rng), locks: bits(rng, opts.statusBytes * 8) }, opts)],
        [1, () => encodeCu8a({ kind: "unlock", board: byte(rng), lock: byte(rng), value: rng.pick([0x00, 0x11, byte(rng)]) }, opts)],
        [1, () => encodeCu8a({ kind: "report", board: byte(rng), lock: byte(rng), value: byte(rng) }, opts)],
      ])();
    },
  };
}

/** noisy: valid frames with random bytes between them; answer: what an emulated board sent back. */
type BoardInput = { kind: "random" | "valid" | "mutated" | "noisy" | "answer"; bytes: Buffer; frames: Buffer[]; cuts: number[] };

function mutate(rng: Rng, bytes: Buffer): Buffer {
  const b = [...bytes];
  for (let m = rng.int(1, 3); m > 0; m--) {
    const at = rng.int(0, Math.max(0, b.length - 1));
    rng.weighted<() => void>([
      [3, () => void (b[at] = (b[at] ?? 0) ^ (1 << rng.int(0, 7)))],
      [2, () => void (b[at] = rng.int(0, 255))],
      [1, () => void b.splice(at, 0, rng.pick([0x02, 0x03, 0x8a, 0x80, 0x82, 0x33, rng.int(0, 255)]))],
      [1, () => void b.splice(at, 1)],
      [1, () => void b.splice(at, 0, ...b.slice(at, at + rng.int(1, 6)))],
      [1, () => void b.splice(rng.int(0, b.length))],
    ])();
  }
  return Buffer.from(b);
}

function boardInput<F>(rng: Rng, fam: Family<F>): BoardInput {
  const frames = Array.from({ length: rng.int(1, 4) }, () => fam.frame(rng));
  const kind = rng.weighted<BoardInput["kind"]>([[3, "random"], [2, "valid"], [4, "mutated"], [1, "noisy"]]);
  const bytes =
    kind === "random"
      ? rng.bytes(rng.int(0, 48))
      : kind === "valid"
        ? Buffer.concat(frames)
        : kind === "mutated"
          ? mutate(rng, Buffer.concat(frames))
          : Buffer.concat(frames.flatMap((f) => [rng.bytes(rng.int(0, 6)), f]));
  const cuts = Array.from({ length: rng.int(0, 3) }, () => rng.int(0, bytes.length)).sort((a, b) => a - b);
  return { kind, bytes, frames: kind === "valid" ? frames : [], cuts };
}

/** Everything a parser made of `chunks`, flushed at the end. */
function parse<F>(fam: Family<F>, chunks: Buffer[]): Parsed<F>[] {
  const p = fam.parser();
  const items: Parsed<F>[] = [];
  for (const c of chunks) items.push(...p.push(c));
  items.push(...p.flush("end of input"));
  return items;
}

const bytesOf = <F>(items: Parsed<F>[]) => Buffer.concat(items.map((i) => (i.kind === "frame" ? i.raw : i.bytes)));
const framesOf = <F>(items: Parsed<F>[]) => items.filter((i) => i.kind === "frame").map((i) => (i as { raw: Buffer }).raw.toString("hex"));
const discardedOf = <F>(items: Parsed<F>[]) => items.reduce((s, i) => s + (i.kind === "discarded" ? i.bytes.length : 0), 0);

/** The invariants of one parse; returns what is wrong, or null. */
function checkParse<F>(fam: Family<F>, input: BoardInput, tally: Tally): string | null {
  const whole = parse(fam, [input.bytes]);
  const bounds = [0, ...input.cuts, input.bytes.length];
  const chunked = parse(
    fam,
    bounds.slice(1).map((end, k) => input.bytes.subarray(bounds[k]!, end)),
  );
  for (const [how, items] of [["whole", whole], ["chunked", chunked]] as const) {
    if (!bytesOf(items).equals(input.bytes)) return `${how}: the items' bytes are not the input (${bytesOf(items).toString("hex")})`;
    for (const item of items) {
      if (item.kind !== "frame") continue;
      let again: F;
      try {
        again = fam.decode(item.raw);
      } catch (e) {
        return `${how}: frame ${item.raw.toString("hex")} accepted by the stream, refused alone: ${describeError(e)}`;
      }
      if (JSON.stringify(again) !== JSON.stringify(item.frame)) return `${how}: frame ${item.raw.toString("hex")} parsed as ${JSON.stringify(item.frame)}, decodes as ${JSON.stringify(again)}`;
    }
  }
  if (framesOf(whole).join() !== framesOf(chunked).join() || discardedOf(whole) !== discardedOf(chunked)) {
    return `chunking at ${input.cuts.join(",")} changed the frames: ${framesOf(whole).join(" ")} vs ${framesOf(chunked).join(" ")}`;
  }
  if (input.kind === "valid" && framesOf(whole).join() !== input.frames.map((f) => f.toString("hex")).join()) {
    return `valid frames ${input.frames.map((f) => f.toString("hex")).join(" ")} came out as ${framesOf(whole).join(" ")}`;
  }
  tally.count(`boards.${input.kind}.frames`, framesOf(whole).length);
  tally.count(`boards.${input.kind}.discardedBytes`, discardedOf(whole));
  return null;
}

export async function fuzzBoards(opts: BoardsFuzzOptions): Promise<FuzzReport> {
  const tally = new Tally("boards", opts.seed);
  const rng = new Rng(opts.seed);
  const families = [
    kerong(),
    cu8a({ statusBytes: 3, order: "high-first" }, "host"),
    cu8a({ statusBytes: 2, order: "low-first" }, "host"),
    cu8a({ statusBytes: 1, order: "high-first" }, "host"),
    cu8a({ statusBytes: 3, order: "high-first" }, "board"),
  ] as Family<unknown>[];
  const emulatorShare = Math.floor(opts.inputs / 10);
  const parserInputs = opts.inputs - emulatorShare;
  for (let i = 0; i < parserInputs; i++) {
    const fam = families[i % families.length]!;
    const input = boardInput(rng, fam);
    tally.count(`boards.${fam.name}`);
    try {
      const wrong = checkParse(fam, input, tally);
      if (wrong) tally.find({ kind: "invariant", input: i, detail: `${fam.name}: ${wrong}`, repro: show({ family: fam.name, input }) });
    } catch (e) {
      tally.find({ kind: "crash", input: i, detail: `${fam.name}: ${describeError(e)}`, repro: show({ family: fam.name, input }) });
    }
  }
  emulators(rng.fork(7), emulatorShare, parserInputs, tally);
  return tally.report(opts.inputs);
}

/** What a host sends: requests to the boards there are (and some to boards that are not), damaged at times. */
function requestInput<F>(rng: Rng, fam: Family<F>, boards: number[]): BoardInput {
  const frames = Array.from({ length: rng.int(1, 3) }, () => {
    const f = Buffer.from(fam.frame(rng));
    if (rng.chance(0.8)) {
      // address an emulated board, and fix the checksum up again (sum for Kerong, XOR for 0x8A)
      const board = rng.pick(boards);
      if (fam.name === "kerong") f[1] = (board << 4) | (f[1]! & 0x0f);
      else f[1] = board;
      const body = f.subarray(0, f.length - 1);
      f[f.length - 1] = fam.name === "kerong" ? body.reduce((a, b) => (a + b) & 0xff, 0) : body.reduce((a, b) => a ^ b, 0);
    }
    return f;
  });
  const kind = rng.weighted<BoardInput["kind"]>([[1, "random"], [4, "valid"], [2, "mutated"], [1, "noisy"]]);
  const bytes =
    kind === "random"
      ? rng.bytes(rng.int(0, 32))
      : kind === "valid"
        ? Buffer.concat(frames)
        : kind === "mutated"
          ? mutate(rng, Buffer.concat(frames))
          : Buffer.concat(frames.flatMap((f) => [rng.bytes(rng.int(0, 6)), f]));
  return { kind, bytes, frames: [], cuts: [] };
}

/** Host bytes into the emulated boards (faults, noise, control lines); their answers through the host parser. */
function emulators(rng: Rng, n: number, base: number, tally: Tally): void {
  const noise = rng.fork(1);
  const kerongHost = kerong() as Family<unknown>;
  const cu8aHost = cu8a({ statusBytes: 3, order: "high-first" }, "host") as Family<unknown>;
  const cu8aBoardSide = cu8a({ statusBytes: 3, order: "high-first" }, "board") as Family<unknown>;
  const emus: { emu: KerongEmulator | Cu8aEmulator; boards: number[]; host: Family<unknown>; request: Family<unknown> }[] = [
    { emu: new KerongEmulator({ boards: [0, 1, 2], random: () => noise.float() }), boards: [0, 1, 2], host: kerongHost, request: kerongHost },
    { emu: new Cu8aEmulator({ boards: [1, 2], random: () => noise.float() }), boards: [1, 2], host: cu8aHost, request: cu8aBoardSide },
  ];
  for (let i = 0; i < n; i++) {
    const { emu, boards, host, request } = emus[i % emus.length]!;
    const input = requestInput(rng, request, boards);
    let control = "";
    try {
      if (rng.chance(0.1)) {
        control = rng.weighted<() => string>([
          [2, () => JSON.stringify({ cmd: "fault", board: rng.int(0, 3), mode: rng.pick(BOARD_FAULTS) })],
          [1, () => JSON.stringify({ cmd: rng.pick(["door", "item", "raw", "state", "fault", "x"]), board: rng.int(-1, 300), lock: rng.int(-1, 70), state: rng.pick(["open", "closed", 1]), present: rng.pick([true, 0]), hex: rng.hex(rng.int(0, 9)) })],
          [1, () => JSON.stringify(rng.json(3))],
          [1, () => rng.junk(rng.int(0, 30))],
        ])();
        applyControl(emu, control);
      }
      if (rng.chance(0.05)) emu.setNoise(rng.pick(boards), rng.pick([0, 0.1, 0.5, 1]));
      const tx: Buffer[] = [];
      const onTx = (b: Buffer) => tx.push(b);
      emu.on("tx", onTx);
      emu.input(input.bytes);
      emu.off("tx", onTx);
      tally.count("emulator.answers", tx.length);
      const answer: BoardInput = { kind: "answer", bytes: Buffer.concat(tx), frames: [], cuts: tx.map((_, k) => tx.slice(0, k).reduce((s, b) => s + b.length, 0)).slice(1) };
      const wrong = checkParse(host, answer, tally);
      if (wrong) tally.find({ kind: "invariant", input: base + i, detail: `${host.name} reading the emulator: ${wrong}`, repro: show({ control, input }) });
    } catch (e) {
      tally.find({ kind: "crash", input: base + i, detail: `emulator: ${describeError(e)}`, repro: show({ control, input }) });
    }
  }
}
