// The UART protocol of R30x / R503 / AS608-class fingerprint modules (ZhianTec ZFM, Hangzhou Grow,
// Synochip AS608 boards all speak it). One packet, big-endian throughout:
//
//   EF 01 | address (4) | packet id (1) | length (2) | payload (length - 2) | checksum (2)
//
//   packet id: 01 command, 02 data (more follows), 07 acknowledge, 08 last data packet
//   payload:   command = instruction code + parameters; ack = confirmation code + data
//   checksum:  low 16 bits of the sum of the packet id, both length bytes and every payload byte
//
// The host sends a command, the module answers one ack (a few instructions follow it with data
// packets; lockerd uses none of those). Addresses: the module answers only packets carrying its
// own address (default FF FF FF FF) and puts that address in its answers.
//
// Builders make each command lockerd sends (and the emulator understands); `decodeCommand` is the
// module's side; the `parse*` functions read the acks' data. FingerprintParser turns a byte stream
// in any chunking into packets, resynchronising on EF 01 after noise.

export const HEADER = Buffer.from([0xef, 0x01]);
export { DEFAULT_ADDRESS } from "./config.js";
/** Header, address, packet id, length: the bytes before the payload. */
const HEAD_BYTES = 9;
/**
 * The largest length field accepted. Data packets carry at most 256 bytes (packet size code 3);
 * every command and ack is far shorter (ReadProdInfo's 46-byte answer is the longest known).
 * A longer length is noise, never waited for, so a hostile length cannot make the parser hold
 * (or allocate) more than one packet's worth.
 */
export const MAX_LENGTH = 256 + 2;
/** Payload (1 byte) + checksum. */
const MIN_LENGTH = 3;

export const PacketId = { Command: 0x01, Data: 0x02, Ack: 0x07, EndData: 0x08 } as const;
export type PacketId = (typeof PacketId)[keyof typeof PacketId];
const PACKET_IDS: ReadonlySet<number> = new Set(Object.values(PacketId));

/** Instruction codes (the names are the datasheets', misspellings included). */
export const Instruction = {
  GenImg: 0x01,
  Img2Tz: 0x02,
  Match: 0x03,
  Search: 0x04,
  RegModel: 0x05,
  Store: 0x06,
  DeletChar: 0x0c,
  Empty: 0x0d,
  ReadSysPara: 0x0f,
  VfyPwd: 0x13,
  TempleteNum: 0x1d,
  ReadIndexTable: 0x1f,
  HandShake: 0x40,
} as const;
export type InstructionName = keyof typeof Instruction;
const INSTRUCTION_NAMES = new Map<number, InstructionName>(Object.entries(Instruction).map(([k, v]) => [v, k as InstructionName]));

/** Confirmation codes (first byte of an ack's payload). */
export const Confirm = {
  Ok: 0x00,
  PacketError: 0x01,
  NoFinger: 0x02,
  ImageFail: 0x03,
  ImageMessy: 0x06,
  FeatureFail: 0x07,
  NoMatch: 0x08,
  NotFound: 0x09,
  CombineFail: 0x0a,
  BadLocation: 0x0b,
  BadTemplate: 0x0c,
  DeleteFail: 0x10,
  ClearFail: 0x11,
  WrongPassword: 0x13,
  InvalidImage: 0x15,
  FlashError: 0x18,
  BadRegister: 0x1a,
  BadAddress: 0x20,
  MustVerifyPassword: 0x21,
  Unsupported: 0xfc,
} as const;

const CONFIRM_TEXT: Record<number, string> = {
  0x00: "ok",
  0x01: "packet receive error",
  0x02: "no finger on the sensor",
  0x03: "failed to take the image",
  0x06: "image too messy",
  0x07: "too few features (image too small)",
  0x08: "templates do not match",
  0x09: "no match in the library",
  0x0a: "failed to combine the character files",
  0x0b: "page id beyond the library",
  0x0c: "template unreadable or invalid",
  0x10: "failed to delete",
  0x11: "failed to clear the library",
  0x13: "wrong password",
  0x15: "no valid image in the image buffer",
  0x18: "flash write error",
  0x1a: "invalid register number",
  0x20: "wrong address",
  0x21: "password must be verified first",
  0xfc: "unsupported command",
};

export function confirmText(code: number): string {
  return CONFIRM_TEXT[code] ?? `confirmation code 0x${code.toString(16).padStart(2, "0")}`;
}

export interface Packet {
  address: number;
  pid: number;
  payload: Buffer;
}

/** The checksum of a packet: packet id + length bytes + payload bytes, low 16 bits. */
export function checksum(pid: number, payload: Uint8Array): number {
  const length = payload.length + 2;
  let sum = pid + (length >> 8) + (length & 0xff);
  for (const b of payload) sum += b;
  return sum & 0xffff;
}

export function encodePacket(p: Packet): Buffer {
  if (p.payload.length + 2 > MAX_LENGTH) throw new RangeError(`fingerprint payload of ${p.payload.length} bytes is too long`);
  const out = Buffer.alloc(HEAD_BYTES + p.payload.length + 2);
  HEADER.copy(out, 0);
  out.writeUInt32BE(p.address >>> 0, 2);
  out[6] = p.pid;
  out.writeUInt16BE(p.payload.length + 2, 7);
  p.payload.copy(out, HEAD_BYTES);
  out.writeUInt16BE(checksum(p.pid, p.payload), HEAD_BYTES + p.payload.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands (host → module)

export interface Command {
  name: InstructionName;
  /** Instruction code + parameters. */
  payload: Buffer;
}

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
const cmd = (name: InstructionName, ...params: number[]): Command => ({ name, payload: Buffer.from([Instruction[name], ...params]) });

function checkRange(what: string, n: number, min: number, max: number): void {
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${what} ${n} is not within ${min}..${max}`);
}

/** Typed builders of every command lockerd sends. */
export const commands = {
  /** VfyPwd: the 4-byte handshake password (default 0). */
  vfyPwd(password: number): Command {
    checkRange("password", password, 0, 0xffffffff);
    return cmd("VfyPwd", ...u32(password));
  },
  /** GenImg: take an image of the finger on the sensor into the image buffer. */
  genImg: (): Command => cmd("GenImg"),
  /** Img2Tz (GenChar): the image buffer → a character file in char buffer 1 or 2. */
  img2Tz(buffer: number): Command {
    checkRange("char buffer", buffer, 1, 6);
    return cmd("Img2Tz", buffer);
  },
  /** Match: char buffer 1 against char buffer 2 (R503: the latest features against the model). */
  match: (): Command => cmd("Match"),
  /** Search: char buffer `buffer` against library pages start .. start+count-1. */
  search(buffer: number, start: number, count: number): Command {
    checkRange("char buffer", buffer, 1, 6);
    checkRange("start page", start, 0, 0xffff);
    checkRange("page count", count, 0, 0xffff);
    return cmd("Search", buffer, ...u16(start), ...u16(count));
  },
  /** RegModel: combine char buffers 1 and 2 into a template (stored back in both). */
  regModel: (): Command => cmd("RegModel"),
  /** Store: the template in `buffer` to library page `page`. */
  store(buffer: number, page: number): Command {
    checkRange("char buffer", buffer, 1, 6);
    checkRange("page", page, 0, 0xffff);
    return cmd("Store", buffer, ...u16(page));
  },
  /** DeletChar: `count` templates from page `page` on. */
  deletChar(page: number, count: number): Command {
    checkRange("page", page, 0, 0xffff);
    checkRange("count", count, 1, 0xffff);
    return cmd("DeletChar", ...u16(page), ...u16(count));
  },
  empty: (): Command => cmd("Empty"),
  readSysPara: (): Command => cmd("ReadSysPara"),
  templeteNum: (): Command => cmd("TempleteNum"),
  /** ReadIndexTable: which of pages 256*index .. 256*index+255 hold a template. */
  readIndexTable(index: number): Command {
    checkRange("index page", index, 0, 3);
    return cmd("ReadIndexTable", index);
  },
  /** HandShake (R503 and later firmware): 00 when the module is ready. */
  handShake: (): Command => cmd("HandShake"),
};

export function encodeCommand(address: number, c: Command): Buffer {
  return encodePacket({ address, pid: PacketId.Command, payload: c.payload });
}

/** A command as the module reads it (the emulator). Unknown or short ones carry their code. */
export type DecodedCommand =
  | { name: "VfyPwd"; password: number }
  | { name: "GenImg" | "Match" | "RegModel" | "Empty" | "ReadSysPara" | "TempleteNum" | "HandShake" }
  | { name: "Img2Tz"; buffer: number }
  | { name: "Search"; buffer: number; start: number; count: number }
  | { name: "Store"; buffer: number; page: number }
  | { name: "DeletChar"; page: number; count: number }
  | { name: "ReadIndexTable"; index: number }
  | { name: "unknown"; code: number }
  | { name: "malformed"; code: number };

const PARAM_BYTES: Record<InstructionName, number> = {
  VfyPwd: 4,
  GenImg: 0,
  Img2Tz: 1,
  Match: 0,
  Search: 5,
  RegModel: 0,
  Store: 3,
  DeletChar: 4,
  Empty: 0,
  ReadSysPara: 0,
  TempleteNum: 0,
  ReadIndexTable: 1,
  HandShake: 0,
};

export function decodeCommand(payload: Buffer): DecodedCommand {
  const code = payload[0] ?? -1;
  const name = INSTRUCTION_NAMES.get(code);
  if (!name) return { name: "unknown", code };
  if (payload.length - 1 < PARAM_BYTES[name]) return { name: "malformed", code };
  const p = payload.subarray(1);
  switch (name) {
    case "VfyPwd":
      return { name, password: p.readUInt32BE(0) };
    case "Img2Tz":
      return { name, buffer: p[0]! };
    case "Search":
      return { name, buffer: p[0]!, start: p.readUInt16BE(1), count: p.readUInt16BE(3) };
    case "Store":
      return { name, buffer: p[0]!, page: p.readUInt16BE(1) };
    case "DeletChar":
      return { name, page: p.readUInt16BE(0), count: p.readUInt16BE(2) };
    case "ReadIndexTable":
      return { name, index: p[0]! };
    default:
      return { name };
  }
}

export function instructionName(code: number): string {
  return INSTRUCTION_NAMES.get(code) ?? `0x${code.toString(16).padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------------------------
// Acks (module → host)

export interface Ack {
  code: number;
  /** What follows the confirmation code. */
  data: Buffer;
}

export function encodeAck(address: number, code: number, data: Uint8Array = Buffer.alloc(0)): Buffer {
  return encodePacket({ address, pid: PacketId.Ack, payload: Buffer.concat([Buffer.from([code]), data]) });
}

/** An ack packet's confirmation code and data; undefined for any other packet. */
export function toAck(p: Packet): Ack | undefined {
  if (p.pid !== PacketId.Ack || p.payload.length < 1) return undefined;
  return { code: p.payload[0]!, data: p.payload.subarray(1) };
}

/** Data bytes a successful ack of each instruction carries (a failed one may carry fewer). */
export const ACK_DATA_BYTES: Record<InstructionName, number> = {
  VfyPwd: 0,
  GenImg: 0,
  Img2Tz: 0,
  Match: 2,
  Search: 4,
  RegModel: 0,
  Store: 0,
  DeletChar: 0,
  Empty: 0,
  ReadSysPara: 16,
  TempleteNum: 2,
  ReadIndexTable: 32,
  HandShake: 0,
};

/**
 * Whether `ack` can be the answer to `name`: a successful one has that instruction's data; a
 * failed one has that or none (some firmwares send only the code). Anything else is a stray
 * (a late answer to an earlier command) and is not taken as this command's answer.
 */
export function ackFits(name: InstructionName, ack: Ack): boolean {
  const n = ACK_DATA_BYTES[name];
  return ack.data.length === n || (ack.code !== Confirm.Ok && ack.data.length === 0);
}

export interface SearchResult {
  page: number;
  score: number;
}

/** Search's data: page id (2) + match score (2). Both are 0 with 09 (no match). */
export function parseSearch(ack: Ack): SearchResult | undefined {
  if (ack.code !== Confirm.Ok || ack.data.length < 4) return undefined;
  return { page: ack.data.readUInt16BE(0), score: ack.data.readUInt16BE(2) };
}

/** Match's data: the match score (2). */
export function parseMatchScore(ack: Ack): number | undefined {
  return ack.data.length >= 2 ? ack.data.readUInt16BE(0) : undefined;
}

/** TempleteNum's data: the number of stored templates (2). */
export function parseTemplateCount(ack: Ack): number | undefined {
  return ack.code === Confirm.Ok && ack.data.length >= 2 ? ack.data.readUInt16BE(0) : undefined;
}

export interface SysPara {
  /** Bit 0 busy, 1 matched, 2 password verified, 3 image buffer valid. */
  status: number;
  systemId: number;
  librarySize: number;
  securityLevel: number;
  address: number;
  /** Data packet size in bytes (from its code 0..3: 32, 64, 128, 256). */
  packetSize: number;
  baudRate: number;
}

/** ReadSysPara's 16 bytes: eight 16-bit words, the address being two of them. */
export function parseSysPara(ack: Ack): SysPara | undefined {
  const d = ack.data;
  if (ack.code !== Confirm.Ok || d.length < 16) return undefined;
  return {
    status: d.readUInt16BE(0),
    systemId: d.readUInt16BE(2),
    librarySize: d.readUInt16BE(4),
    securityLevel: d.readUInt16BE(6),
    address: d.readUInt32BE(8),
    packetSize: 32 << Math.min(d.readUInt16BE(12), 3),
    baudRate: d.readUInt16BE(14) * 9600,
  };
}

export function encodeSysPara(p: Omit<SysPara, "packetSize" | "baudRate"> & { packetSizeCode: number; baudN: number }): Buffer {
  const d = Buffer.alloc(16);
  d.writeUInt16BE(p.status, 0);
  d.writeUInt16BE(p.systemId, 2);
  d.writeUInt16BE(p.librarySize, 4);
  d.writeUInt16BE(p.securityLevel, 6);
  d.writeUInt32BE(p.address >>> 0, 8);
  d.writeUInt16BE(p.packetSizeCode, 12);
  d.writeUInt16BE(p.baudN, 14);
  return d;
}

/**
 * ReadIndexTable's 32 bytes for index page `index`: byte k holds pages 256*index + 8k .. +8k+7,
 * the lowest page in bit 0 (the datasheets draw each byte from bit 7, page 8k+7, down to bit 0).
 */
export function parseIndexTable(ack: Ack, index: number): number[] | undefined {
  if (ack.code !== Confirm.Ok || ack.data.length < 32) return undefined;
  const used: number[] = [];
  for (let k = 0; k < 32; k++) {
    const byte = ack.data[k]!;
    for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) used.push(index * 256 + k * 8 + bit);
  }
  return used;
}

export function encodeIndexTable(used: Iterable<number>, index: number): Buffer {
  const d = Buffer.alloc(32);
  for (const page of used) {
    const rel = page - index * 256;
    if (rel < 0 || rel >= 256) continue;
    d[rel >> 3] = d[rel >> 3]! | (1 << (rel & 7));
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// The stream parser

export type Parsed =
  | { kind: "packet"; packet: Packet; raw: Buffer }
  | { kind: "discarded"; reason: "garbage" | "checksum" | "bad header"; bytes: Buffer };

export interface ParserStats {
  packets: number;
  /** Complete packets whose checksum did not add up. */
  badChecksums: number;
  discardedBytes: number;
}

export class FingerprintParser {
  private buf = Buffer.alloc(0);
  readonly stats: ParserStats = { packets: 0, badChecksums: 0, discardedBytes: 0 };

  /** Bytes held while waiting for the rest of a packet (never more than one packet's worth). */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array): Parsed[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out: Parsed[] = [];
    for (;;) {
      const start = this.buf.indexOf(HEADER);
      if (start < 0) {
        // A trailing EF may be the first half of the next header.
        const keep = this.buf.length > 0 && this.buf[this.buf.length - 1] === HEADER[0] ? 1 : 0;
        if (this.buf.length > keep) out.push(this.take("garbage", this.buf.length - keep));
        return out;
      }
      if (start > 0) out.push(this.take("garbage", start));
      if (this.buf.length < HEAD_BYTES) return out;
      const pid = this.buf[6]!;
      const length = this.buf.readUInt16BE(7);
      if (!PACKET_IDS.has(pid) || length < MIN_LENGTH || length > MAX_LENGTH) {
        // Not a packet after all (EF 01 inside noise): skip its EF and look again.
        out.push(this.take("bad header", 1));
        continue;
      }
      const total = HEAD_BYTES + length;
      if (this.buf.length < total) return out;
      const payload = this.buf.subarray(HEAD_BYTES, total - 2);
      if (checksum(pid, payload) !== this.buf.readUInt16BE(total - 2)) {
        this.stats.badChecksums++;
        // A header inside it means this was noise that looked like a header, and a real packet
        // starts there; else it was a packet damaged on the line, dropped whole.
        const inner = this.buf.indexOf(HEADER, 2);
        out.push(this.take("checksum", inner > 0 && inner < total ? inner : total));
        continue;
      }
      const raw = Buffer.from(this.buf.subarray(0, total));
      this.buf = this.buf.subarray(total);
      this.stats.packets++;
      out.push({ kind: "packet", packet: { address: raw.readUInt32BE(2), pid, payload: raw.subarray(HEAD_BYTES, total - 2) }, raw });
    }
  }

  /** Give up on a packet in progress (an answer that never completed, the port reopened). */
  flush(): Parsed[] {
    if (!this.buf.length) return [];
    return [this.take("garbage", this.buf.length)];
  }

  private take(reason: "garbage" | "checksum" | "bad header", n: number): Parsed {
    const bytes = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    this.stats.discardedBytes += n;
    return { kind: "discarded", reason, bytes };
  }
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
