// Kerong KR-CU16 class lock-control boards (RS485, 19200 8N1): the pure codec and the stream framer.
// Protocol notes and worked examples: hardware/boards/kerong-kr-cu16.md.
//
//   host ─▶ board   02 ADDR CMD 03 SUM                      (5 bytes)
//   board ─▶ host   02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM (9 bytes, answer to 0x30)
//
// ADDR = board << 4 | lock nibble (lock 0..15 = locks 1..16). SUM = sum of every byte before it,
// mod 256. A board answers a status read (0x30) and does not answer an unlock (0x31).
import { ErrorCode, LockerError } from "../../errors.js";
import { FrameParser, hex, type Framing } from "./parser.js";

export const KERONG_STX = 0x02;
export const KERONG_ETX = 0x03;

export const KerongCommand = {
  /** Read one board: answered by a 0x35 status frame. */
  ReadStatus: 0x30,
  /** Unlock one lock (lock in the ADDR low nibble). Not answered. */
  Unlock: 0x31,
  /** Unlock every lock of a board. Not used by lockerd. */
  UnlockAll: 0x33,
  /** The status frame a board sends back. */
  Status: 0x35,
} as const;

export const KERONG_BOARDS = 16;
export const KERONG_LOCKS = 16;
export const KERONG_COMMAND_LENGTH = 5;
export const KERONG_STATUS_LENGTH = 9;

export type KerongFrame =
  /** A 5-byte frame: a command as the host sends it. `lock` is 1..16 (nibble + 1; 1 for board-wide commands). */
  | { kind: "command"; board: number; lock: number; command: number }
  /** A board's status. `locks[0]` / `items[0]` are lock 1's bits (true = bit set, polarity is the board's). */
  | { kind: "status"; board: number; locks: boolean[]; items: boolean[] };

/** Sum of the bytes mod 256. */
export function kerongSum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

function checkRange(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new LockerError(ErrorCode.BadInput, `kerong ${what} ${value} outside 0..${max}`, { [what]: value });
  }
}

function withSum(body: number[]): Buffer {
  return Buffer.from([...body, kerongSum(Uint8Array.from(body))]);
}

/** ADDR byte: board (0..15) in the high nibble, lock (1..16) as nibble 0..15 in the low one. */
export function kerongAddress(board: number, lock: number): number {
  checkRange("board", board, KERONG_BOARDS - 1);
  checkRange("lock", lock - 1, KERONG_LOCKS - 1);
  return (board << 4) | (lock - 1);
}

/** Unlock lock `lock` (1..16) of board `board` (0..15). */
export function kerongUnlock(board: number, lock: number): Buffer {
  return withSum([KERONG_STX, kerongAddress(board, lock), KerongCommand.Unlock, KERONG_ETX]);
}

/** Read the lock and infrared bits of board `board` (lock nibble 0). */
export function kerongReadStatus(board: number): Buffer {
  return withSum([KERONG_STX, kerongAddress(board, 1), KerongCommand.ReadStatus, KERONG_ETX]);
}

function bitsToBytes(bits: readonly boolean[]): [number, number] {
  let word = 0;
  for (let i = 0; i < KERONG_LOCKS; i++) if (bits[i]) word |= 1 << i;
  return [word & 0xff, word >> 8];
}

function bytesToBits(lo: number, hi: number): boolean[] {
  const word = lo | (hi << 8);
  const bits = new Array<boolean>(KERONG_LOCKS);
  for (let i = 0; i < KERONG_LOCKS; i++) bits[i] = (word & (1 << i)) !== 0;
  return bits;
}

/** Any frame as bytes (the emulator answers with this). */
export function encodeKerong(frame: KerongFrame): Buffer {
  if (frame.kind === "command") {
    checkRange("command", frame.command, 0xff);
    return withSum([KERONG_STX, kerongAddress(frame.board, frame.lock), frame.command, KERONG_ETX]);
  }
  const [l1, l2] = bitsToBytes(frame.locks);
  const [i1, i2] = bitsToBytes(frame.items);
  return withSum([KERONG_STX, kerongAddress(frame.board, 1), KerongCommand.Status, l1, l2, i1, i2, KERONG_ETX]);
}

/** Why `bytes` is not one valid frame, or null when it is. */
function problem(bytes: Uint8Array, length: number): string | null {
  if (bytes[0] !== KERONG_STX) return "no STX";
  if (bytes[length - 2] !== KERONG_ETX) return "no ETX";
  if (kerongSum(bytes.subarray(0, length - 1)) !== bytes[length - 1]) return "bad checksum";
  return null;
}

/** The length a frame starting with these bytes has: the command byte decides (0x35 = status). */
function expectedLength(bytes: Uint8Array): number {
  return bytes[2] === KerongCommand.Status ? KERONG_STATUS_LENGTH : KERONG_COMMAND_LENGTH;
}

function parse(b: Uint8Array): KerongFrame {
  const addr = b[1] ?? 0;
  const board = addr >> 4;
  if (b.length === KERONG_STATUS_LENGTH) {
    return { kind: "status", board, locks: bytesToBits(b[3] ?? 0, b[4] ?? 0), items: bytesToBits(b[5] ?? 0, b[6] ?? 0) };
  }
  return { kind: "command", board, lock: (addr & 0x0f) + 1, command: b[2] ?? 0 };
}

/** Decode exactly one frame. Throws (LockerError HardwareUnavailable) on anything else: never a guess. */
export function decodeKerong(bytes: Uint8Array): KerongFrame {
  const length = bytes.length >= 3 ? expectedLength(bytes) : KERONG_COMMAND_LENGTH;
  const why = bytes.length !== length ? `${bytes.length} bytes, expected ${length}` : problem(bytes, length);
  if (why) throw new LockerError(ErrorCode.HardwareUnavailable, `kerong frame ${hex(bytes)}: ${why}`, { frame: hex(bytes), problem: why });
  return parse(bytes);
}

/** Framer for the stream parser: at most 9 bytes of look-ahead. */
export function kerongFramer(buffer: Buffer): Framing<KerongFrame> {
  if (buffer[0] !== KERONG_STX) return { kind: "invalid", reason: "no STX" };
  if (buffer.length < 3) return { kind: "incomplete" };
  const length = expectedLength(buffer);
  if (buffer.length < length) return { kind: "incomplete" };
  const bytes = buffer.subarray(0, length);
  const why = problem(bytes, length);
  return why ? { kind: "invalid", reason: why } : { kind: "frame", length, frame: parse(bytes) };
}

export function createKerongParser(): FrameParser<KerongFrame> {
  return new FrameParser(kerongFramer);
}

export function describeKerong(frame: KerongFrame): string {
  if (frame.kind === "status") return `kerong #${frame.board} status`;
  const name = Object.entries(KerongCommand).find(([, v]) => v === frame.command)?.[0] ?? `0x${frame.command.toString(16)}`;
  return `kerong #${frame.board} ${name} lock ${frame.lock}`;
}
