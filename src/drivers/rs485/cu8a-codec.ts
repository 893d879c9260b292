// The common "0x8A" lock-control boards (RS485, 9600 8N1; sold as 8/12/16/24-channel parcel and
// vending locker boards): the pure codec and the stream framer. Protocol notes, what is confirmed by
// several sources and what is assumed: hardware/boards/board-8a.md.
//
//   host ─▶ board   8A BB LL 11 X            unlock lock LL of board BB (LL 00 = all)
//   board ─▶ host   8A BB LL VV X            after an unlock: VV 00 = lock open, 11 = still closed
//   host ─▶ board   80 BB 00 33 X            read every lock of board BB
//   board ─▶ host   80 BB S1..Sn 33 X        n status bytes, 8 locks each (n = 3 on 24-channel boards)
//   host ─▶ board   80 BB LL 33 X            read one lock; answered 80 BB LL VV X
//   board ─▶ host   82 BB LL VV X            a board's own report of a change (only some firmwares)
//
// X = XOR of every byte before it. The order of S1..Sn (which byte holds locks 1-8) and the bit
// polarity are assumptions, so both are options.
import { ErrorCode, LockerError } from "../../errors.js";
import { FrameParser, hex, type Framing } from "./parser.js";

export const Cu8aHead = {
  Unlock: 0x8a,
  Query: 0x80,
  Report: 0x82,
} as const;

/** Function byte of an unlock request. Also the "closed" lock value in replies. */
export const CU8A_UNLOCK_FN = 0x11;
/** Function byte of a query request; also the byte after the status bytes of a reply. */
export const CU8A_QUERY_FN = 0x33;
/** Lock value in a reply: 0x11 = closed (treated as bit 1), 0x00 = open (bit 0). */
export const CU8A_CLOSED = 0x11;
export const CU8A_OPEN = 0x00;

export const CU8A_SHORT_LENGTH = 5;

export interface Cu8aOptions {
  /** Status bytes in a read-all reply: 8 locks each (3 for a 24-channel board). */
  statusBytes: number;
  /** "high-first": the first status byte holds the highest locks (17-24 on a 24-channel board). */
  order: "high-first" | "low-first";
}

export const CU8A_DEFAULTS: Cu8aOptions = { statusBytes: 3, order: "high-first" };

export type Cu8aFrame =
  /** 8A BB LL VV: an unlock (VV 0x11) or a board's answer to it (VV = the lock's value). */
  | { kind: "unlock"; board: number; lock: number; value: number }
  /** 80 BB LL VV (5 bytes): a single-lock query (VV 0x33) or its answer. */
  | { kind: "query"; board: number; lock: number; value: number }
  /** 82 BB LL VV: a change the board reports on its own. */
  | { kind: "report"; board: number; lock: number; value: number }
  /** 80 BB S1..Sn 33: every lock of a board; `locks[0]` is lock 1 (true = bit set). */
  | { kind: "status"; board: number; locks: boolean[] };

export function cu8aXor(bytes: Uint8Array): number {
  let x = 0;
  for (const b of bytes) x ^= b;
  return x;
}

function byte(what: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new LockerError(ErrorCode.BadInput, `cu8a ${what} ${value} outside 0..255`, { [what]: value });
  }
  return value;
}

function withXor(body: number[]): Buffer {
  return Buffer.from([...body, cu8aXor(Uint8Array.from(body))]);
}

/** Unlock lock `lock` (1.., 0 = every lock) of board `board`. */
export function cu8aUnlock(board: number, lock: number): Buffer {
  return withXor([Cu8aHead.Unlock, byte("board", board), byte("lock", lock), CU8A_UNLOCK_FN]);
}

/** Read every lock of board `board`. */
export function cu8aReadAll(board: number): Buffer {
  return withXor([Cu8aHead.Query, byte("board", board), 0x00, CU8A_QUERY_FN]);
}

/** Which status byte (0-based, among the n) holds locks 8g+1..8g+8. */
function byteIndex(group: number, opts: Cu8aOptions): number {
  return opts.order === "high-first" ? opts.statusBytes - 1 - group : group;
}

export function encodeCu8a(frame: Cu8aFrame, opts: Cu8aOptions = CU8A_DEFAULTS): Buffer {
  if (frame.kind !== "status") {
    const head = frame.kind === "unlock" ? Cu8aHead.Unlock : frame.kind === "query" ? Cu8aHead.Query : Cu8aHead.Report;
    return withXor([head, byte("board", frame.board), byte("lock", frame.lock), byte("value", frame.value)]);
  }
  const status = new Array<number>(opts.statusBytes).fill(0);
  for (let i = 0; i < opts.statusBytes * 8; i++) {
    if (!frame.locks[i]) continue;
    const at = byteIndex(Math.floor(i / 8), opts);
    status[at] = (status[at] ?? 0) | (1 << i % 8);
  }
  return withXor([Cu8aHead.Query, byte("board", frame.board), ...status, CU8A_QUERY_FN]);
}

function statusLength(opts: Cu8aOptions): number {
  return opts.statusBytes + 4;
}

function xorOk(bytes: Uint8Array): boolean {
  return cu8aXor(bytes.subarray(0, bytes.length - 1)) === bytes[bytes.length - 1];
}

function isStatus(bytes: Uint8Array, opts: Cu8aOptions): boolean {
  return bytes.length === statusLength(opts) && bytes[0] === Cu8aHead.Query && bytes[opts.statusBytes + 2] === CU8A_QUERY_FN && xorOk(bytes);
}

function short(bytes: Uint8Array): Cu8aFrame {
  const [head, board = 0, lock = 0, value = 0] = bytes;
  const kind = head === Cu8aHead.Unlock ? "unlock" : head === Cu8aHead.Query ? "query" : "report";
  return { kind, board, lock, value };
}

function status(bytes: Uint8Array, opts: Cu8aOptions): Cu8aFrame {
  const locks = Array.from({ length: opts.statusBytes * 8 }, (_, i) => {
    const b = bytes[2 + byteIndex(Math.floor(i / 8), opts)] ?? 0;
    return (b & (1 << i % 8)) !== 0;
  });
  return { kind: "status", board: bytes[1] ?? 0, locks };
}

const HEADS: ReadonlySet<number> = new Set(Object.values(Cu8aHead));

/**
 * Which end of the bus reads: the host reads boards' answers (read-all replies among them), a board
 * (the emulator) reads the host's requests, which are all 5 bytes long.
 */
export type Cu8aSide = "host" | "board";

/**
 * Framer for the stream parser. On the host side a 0x80 frame is a read-all reply when it is n + 4
 * bytes long with 0x33 before a good XOR, otherwise a 5-byte query answer; so a lone 5-byte 0x80
 * frame is only recognised once n + 4 bytes have arrived (lockerd never sends single-lock queries,
 * see board-8a.md).
 */
export function cu8aFramer(opts: Cu8aOptions = CU8A_DEFAULTS, side: Cu8aSide = "host"): (buffer: Buffer) => Framing<Cu8aFrame> {
  return (buffer) => {
    const head = buffer[0] ?? -1;
    if (!HEADS.has(head)) return { kind: "invalid", reason: "no frame head" };
    if (head === Cu8aHead.Query && side === "host") {
      const long = statusLength(opts);
      if (buffer.length < Math.max(long, CU8A_SHORT_LENGTH)) return { kind: "incomplete" };
      if (isStatus(buffer.subarray(0, long), opts)) return { kind: "frame", length: long, frame: status(buffer, opts) };
    }
    if (buffer.length < CU8A_SHORT_LENGTH) return { kind: "incomplete" };
    const bytes = buffer.subarray(0, CU8A_SHORT_LENGTH);
    return xorOk(bytes) ? { kind: "frame", length: CU8A_SHORT_LENGTH, frame: short(bytes) } : { kind: "invalid", reason: "bad checksum" };
  };
}

/** Decode exactly one frame. Throws (LockerError HardwareUnavailable) on anything else. */
export function decodeCu8a(bytes: Uint8Array, opts: Cu8aOptions = CU8A_DEFAULTS): Cu8aFrame {
  const fail = (why: string) =>
    new LockerError(ErrorCode.HardwareUnavailable, `cu8a frame ${hex(bytes)}: ${why}`, { frame: hex(bytes), problem: why });
  const head = bytes[0] ?? -1;
  if (!HEADS.has(head)) throw fail("no frame head");
  if (head === Cu8aHead.Query && bytes.length === statusLength(opts)) {
    if (isStatus(bytes, opts)) return status(bytes, opts);
    if (bytes.length !== CU8A_SHORT_LENGTH) throw fail(bytes[opts.statusBytes + 2] === CU8A_QUERY_FN ? "bad checksum" : "no 0x33 after the status bytes");
  }
  if (bytes.length !== CU8A_SHORT_LENGTH) throw fail(`${bytes.length} bytes, expected ${CU8A_SHORT_LENGTH} or ${statusLength(opts)}`);
  if (!xorOk(bytes)) throw fail("bad checksum");
  return short(bytes);
}

export function createCu8aParser(opts: Cu8aOptions = CU8A_DEFAULTS, side: Cu8aSide = "host"): FrameParser<Cu8aFrame> {
  return new FrameParser(cu8aFramer(opts, side));
}

export function describeCu8a(frame: Cu8aFrame): string {
  if (frame.kind === "status") return `cu8a #${frame.board} status`;
  return `cu8a #${frame.board} ${frame.kind} lock ${frame.lock} value 0x${frame.value.toString(16).padStart(2, "0")}`;
}
