// Emulated lock-control boards: a set of Kerong KR-CU16 boards or of 0x8A boards that read the
// host's frames from a byte stream and answer byte-exact, through the same codecs. An unlock flips
// the lock's feedback to open (the door springs open); the API closes doors, sets item sensors and
// makes a board misbehave (silent, truncated or corrupt answers, garbage) or its line noisy (a share
// of answers corrupted at random). Used by the tests over a pseudo-terminal and by
// scripts/kerong-emulator.ts; one instance each, no globals.
//
//   host bytes ─▶ input() ─▶ FrameParser ─▶ handle(frame) ─▶ send() ─▶ fault / noise ─▶ "tx" bytes
//                                   └──▶ "rx" records (every frame and discarded run)
import { EventEmitter } from "node:events";
import { z } from "zod";
import { ErrorCode, LockerError } from "../../errors.js";
import {
  CU8A_CLOSED,
  CU8A_DEFAULTS,
  CU8A_OPEN,
  CU8A_QUERY_FN,
  CU8A_UNLOCK_FN,
  createCu8aParser,
  encodeCu8a,
  type Cu8aFrame,
  type Cu8aOptions,
} from "./cu8a-codec.js";
import { KERONG_LOCKS, KerongCommand, createKerongParser, encodeKerong, type KerongFrame } from "./kerong-codec.js";
import { hex, type FrameParser } from "./parser.js";
import { serveStream, type ByteStream } from "../byte-stream.js";

export const BOARD_FAULTS = ["none", "silent", "truncate", "garbage", "bad-checksum"] as const;
/**
 * silent: no answer. truncate: the first half of each answer, then nothing (stops mid-reply).
 * garbage: noise bytes before each (good) answer. bad-checksum: answers with a corrupted checksum.
 */
export type BoardFault = (typeof BOARD_FAULTS)[number];

/** Noise with a stray Kerong STX and 0x8A head in it, so the host's resynchronisation is exercised. */
export const GARBAGE = Buffer.from([0xff, 0x02, 0x8a, 0x55, 0x00]);

export type RxRecord = { rx: string; board: number; command: string; lock?: number } | { discarded: string; reason: string };

export interface EmulatorEvents {
  /** Bytes the boards put on the bus. */
  tx: [bytes: Buffer];
  /** Each frame received from the host, and each run of bytes that was no frame. */
  rx: [record: RxRecord];
}

interface EmulatedBoard {
  /** Index 0 = lock 1. */
  open: boolean[];
  items: boolean[];
  fault: BoardFault;
  /** Share of answers corrupted at random (0..1). */
  noise: number;
}

/** What both emulators take besides their boards. */
export interface NoiseOptions {
  /** 0..1 random source for setNoise() (default Math.random; tests pass a seeded one). */
  random?: () => number;
  /**
   * Model the wire at this baud rate (8N1): a pseudo-terminal moves bytes at once whatever the
   * baud, so without it an exchange takes no time. With it a frame is acted on once its last byte
   * would have arrived, and an answer reaches the host once its last byte would have left; one
   * frame on the line at a time. "rx" still fires when the host's bytes arrive (the frame's start).
   */
  wireBaud?: number;
}

export type { ByteStream } from "../byte-stream.js";

export interface BoardState {
  board: number;
  open: number[];
  items: number[];
  fault: BoardFault;
}

abstract class EmulatedBoards<F> extends EventEmitter<EmulatorEvents> {
  protected readonly boards = new Map<number, EmulatedBoard>();
  private readonly random: () => number;
  private readonly msPerByte: number;
  /** When the modelled line is free again (performance.now). */
  private lineFreeAt = 0;

  constructor(
    addresses: readonly number[],
    readonly locksPerBoard: number,
    private readonly parser: FrameParser<F>,
    opts: NoiseOptions,
  ) {
    super();
    this.random = opts.random ?? Math.random;
    this.msPerByte = opts.wireBaud ? 10_000 / opts.wireBaud : 0;
    for (const a of addresses) {
      this.boards.set(a, { open: new Array<boolean>(locksPerBoard).fill(false), items: new Array<boolean>(locksPerBoard).fill(false), fault: "none", noise: 0 });
    }
  }

  /** Bytes from the host. */
  input(chunk: Uint8Array): void {
    for (const p of this.parser.push(chunk)) {
      if (p.kind === "discarded") this.emit("rx", { discarded: hex(p.bytes), reason: p.reason });
      else {
        this.emit("rx", { rx: hex(p.raw), ...this.summary(p.frame) });
        const frame = p.frame;
        if (this.msPerByte) this.onWire(p.raw.length, () => this.handle(frame));
        else this.handle(frame);
      }
    }
  }

  /** Serve a stream (a serial port): its data in, answers out. Returns a detach function. */
  attach(stream: ByteStream): () => void {
    return serveStream(this, stream);
  }

  isOpen(board: number, lock: number): boolean {
    return this.at(board, lock, (b, i) => b.open[i] ?? false);
  }

  setDoor(board: number, lock: number, state: "open" | "closed"): void {
    this.at(board, lock, (b, i) => (b.open[i] = state === "open"));
  }

  closeDoor(board: number, lock: number): void {
    this.setDoor(board, lock, "closed");
  }

  setItem(board: number, lock: number, present: boolean): void {
    this.at(board, lock, (b, i) => (b.items[i] = present));
  }

  setFault(board: number, fault: BoardFault): void {
    this.board(board).fault = fault;
  }

  /**
   * Line noise on `board`'s answers: while it has no fault, each answer is corrupted (a bad
   * checksum, as the "bad-checksum" fault) with probability `rate`, one draw of `random` per answer.
   */
  setNoise(board: number, rate: number): void {
    if (!(rate >= 0 && rate <= 1)) throw new LockerError(ErrorCode.BadInput, `noise rate ${rate} is not within 0..1`, { board, rate });
    this.board(board).noise = rate;
  }

  /** Put raw bytes on the bus (noise, a hand-made frame). */
  sendRaw(bytes: Uint8Array): void {
    this.emit("tx", Buffer.from(bytes));
  }

  state(): BoardState[] {
    return [...this.boards].map(([board, b]) => ({
      board,
      open: b.open.flatMap((o, i) => (o ? [i + 1] : [])),
      items: b.items.flatMap((o, i) => (o ? [i + 1] : [])),
      fault: b.fault,
    }));
  }

  protected abstract handle(frame: F): void;
  protected abstract summary(frame: F): { board: number; command: string; lock?: number };

  protected has(board: number): boolean {
    return this.boards.has(board);
  }

  protected board(board: number): EmulatedBoard {
    const b = this.boards.get(board);
    if (!b) throw new LockerError(ErrorCode.BadInput, `no emulated board ${board}`, { board });
    return b;
  }

  private at<T>(board: number, lock: number, fn: (b: EmulatedBoard, i: number) => T): T {
    const b = this.board(board);
    if (!Number.isInteger(lock) || lock < 1 || lock > this.locksPerBoard) {
      throw new LockerError(ErrorCode.BadInput, `no lock ${lock} on emulated board ${board}`, { board, lock });
    }
    return fn(b, lock - 1);
  }

  /** Run `then` once `bytes` bytes more would have crossed the modelled line. */
  private onWire(bytes: number, then: () => void): void {
    const now = performance.now();
    this.lineFreeAt = Math.max(now, this.lineFreeAt) + bytes * this.msPerByte;
    setTimeout(then, this.lineFreeAt - now);
  }

  /** Bytes the boards put on the bus: at once, or after their wire time. */
  private transmit(bytes: Buffer): void {
    if (this.msPerByte) this.onWire(bytes.length, () => this.emit("tx", bytes));
    else this.emit("tx", bytes);
  }

  /** An answer from `board`, through its fault, or its noise when it has none. */
  protected send(board: number, bytes: Buffer): void {
    const b = this.board(board);
    const noisy = b.fault === "none" && b.noise > 0 && this.random() < b.noise;
    switch (noisy ? "bad-checksum" : b.fault) {
      case "silent":
        return;
      case "truncate":
        this.transmit(Buffer.from(bytes.subarray(0, Math.ceil(bytes.length / 2))));
        return;
      case "garbage":
        this.transmit(Buffer.concat([GARBAGE, bytes]));
        return;
      case "bad-checksum": {
        const bad = Buffer.from(bytes);
        bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0xff;
        this.transmit(bad);
        return;
      }
      case "none":
        this.transmit(bytes);
    }
  }
}

export interface KerongEmulatorOptions extends NoiseOptions {
  boards: readonly number[];
  lockBitOpen?: 0 | 1;
  irBitPresent?: 0 | 1;
}

export class KerongEmulator extends EmulatedBoards<KerongFrame> {
  private readonly lockBitOpen: boolean;
  private readonly irBitPresent: boolean;

  constructor(opts: KerongEmulatorOptions) {
    super(opts.boards, KERONG_LOCKS, createKerongParser(), opts);
    this.lockBitOpen = (opts.lockBitOpen ?? 0) === 1;
    this.irBitPresent = (opts.irBitPresent ?? 1) === 1;
  }

  protected summary(f: KerongFrame): { board: number; command: string; lock?: number } {
    if (f.kind === "status") return { board: f.board, command: "status" };
    if (f.command === KerongCommand.Unlock) return { board: f.board, command: "unlock", lock: f.lock };
    if (f.command === KerongCommand.ReadStatus) return { board: f.board, command: "read-status" };
    if (f.command === KerongCommand.UnlockAll) return { board: f.board, command: "unlock-all" };
    return { board: f.board, command: `0x${f.command.toString(16).padStart(2, "0")}`, lock: f.lock };
  }

  protected handle(f: KerongFrame): void {
    if (f.kind !== "command" || !this.has(f.board)) return;
    const b = this.board(f.board);
    if (f.command === KerongCommand.Unlock) b.open[f.lock - 1] = true;
    else if (f.command === KerongCommand.UnlockAll) b.open.fill(true);
    else if (f.command === KerongCommand.ReadStatus) {
      const locks = b.open.map((o) => o === this.lockBitOpen);
      const items = b.items.map((i) => i === this.irBitPresent);
      this.send(f.board, encodeKerong({ kind: "status", board: f.board, locks, items }));
    }
  }
}

export interface Cu8aEmulatorOptions extends Partial<Cu8aOptions>, NoiseOptions {
  boards: readonly number[];
  lockBitOpen?: 0 | 1;
  /** Answer an unlock with 8A BB LL VV (default true). */
  answerUnlock?: boolean;
}

export class Cu8aEmulator extends EmulatedBoards<Cu8aFrame> {
  private readonly codec: Cu8aOptions;
  private readonly lockBitOpen: boolean;
  private readonly answerUnlock: boolean;

  constructor(opts: Cu8aEmulatorOptions) {
    const codec = { statusBytes: opts.statusBytes ?? CU8A_DEFAULTS.statusBytes, order: opts.order ?? CU8A_DEFAULTS.order };
    super(opts.boards, codec.statusBytes * 8, createCu8aParser(codec, "board"), opts);
    this.codec = codec;
    this.lockBitOpen = (opts.lockBitOpen ?? 0) === 1;
    this.answerUnlock = opts.answerUnlock ?? true;
  }

  protected summary(f: Cu8aFrame): { board: number; command: string; lock?: number } {
    if (f.kind === "status") return { board: f.board, command: "status" };
    if (f.kind === "query" && f.lock === 0) return { board: f.board, command: "read-all" };
    return { board: f.board, command: f.kind, lock: f.lock };
  }

  /** The one-lock value: a bit 1 answers 0x11, a bit 0 answers 0x00. */
  private value(open: boolean): number {
    return open === this.lockBitOpen ? CU8A_CLOSED : CU8A_OPEN;
  }

  protected handle(f: Cu8aFrame): void {
    if (f.kind === "status" || f.kind === "report" || !this.has(f.board)) return;
    const b = this.board(f.board);
    const inRange = f.lock >= 1 && f.lock <= this.locksPerBoard;
    if (f.kind === "unlock" && f.value === CU8A_UNLOCK_FN) {
      if (f.lock === 0) b.open.fill(true);
      else if (inRange) b.open[f.lock - 1] = true;
      else return;
      const open = f.lock === 0 || (b.open[f.lock - 1] ?? false);
      if (this.answerUnlock) this.send(f.board, encodeCu8a({ kind: "unlock", board: f.board, lock: f.lock, value: this.value(open) }, this.codec));
    } else if (f.kind === "query" && f.value === CU8A_QUERY_FN) {
      if (f.lock === 0) {
        const locks = b.open.map((o) => o === this.lockBitOpen);
        this.send(f.board, encodeCu8a({ kind: "status", board: f.board, locks }, this.codec));
      } else if (inRange) {
        this.send(f.board, encodeCu8a({ kind: "query", board: f.board, lock: f.lock, value: this.value(b.open[f.lock - 1] ?? false) }, this.codec));
      }
    }
  }
}

export type Emulator = KerongEmulator | Cu8aEmulator;

// ---- control protocol: one JSON object per line (scripts/kerong-emulator.ts) ----

const board = z.int().min(0).max(255);
const lock = z.int().min(1).max(64);

export const ControlCommand = z.discriminatedUnion("cmd", [
  z.strictObject({ cmd: z.literal("door"), board, lock, state: z.enum(["open", "closed"]) }),
  z.strictObject({ cmd: z.literal("item"), board, lock, present: z.boolean() }),
  z.strictObject({ cmd: z.literal("fault"), board, mode: z.enum(BOARD_FAULTS) }),
  z.strictObject({ cmd: z.literal("raw"), hex: z.string().regex(/^([0-9a-fA-F]{2})+$/, "expected hex bytes") }),
  z.strictObject({ cmd: z.literal("state") }),
]);
export type ControlCommand = z.infer<typeof ControlCommand>;

export type ControlReply = { ok: true; boards?: BoardState[] } | { ok: false; error: { code: string; message: string } };

/** Apply one control line; the reply is what goes back on the socket. Never throws. */
export function applyControl(emu: Emulator, line: string): ControlReply {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, error: { code: ErrorCode.BadInput, message: "not JSON" } };
  }
  const parsed = ControlCommand.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: { code: ErrorCode.BadInput, message: `${issue?.path.join(".") || "command"}: ${issue?.message ?? "invalid"}` } };
  }
  const c = parsed.data;
  try {
    if (c.cmd === "door") emu.setDoor(c.board, c.lock, c.state);
    else if (c.cmd === "item") emu.setItem(c.board, c.lock, c.present);
    else if (c.cmd === "fault") emu.setFault(c.board, c.mode);
    else if (c.cmd === "raw") emu.sendRaw(Buffer.from(c.hex, "hex"));
    else return { ok: true, boards: emu.state() };
    return { ok: true };
  } catch (e) {
    if (e instanceof LockerError) return { ok: false, error: e.toJSON() };
    return { ok: false, error: { code: ErrorCode.Internal, message: "internal error" } };
  }
}
