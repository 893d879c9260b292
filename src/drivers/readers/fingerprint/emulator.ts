// An emulated fingerprint module (R30x / R503 / AS608 family) that reads the host's command packets
// from a byte stream and answers byte for byte, through the same codec. Fingers are names: `place`
// puts one on the sensor, GenImg then takes its image, Img2Tz makes a character file of it, Store
// keeps the finger's name in a library page, Search finds the pages holding that name. A finger
// nobody enrolled is a template that matches nothing. Used by the tests over a pseudo-terminal and
// by scripts/fingerprint-emulator.ts; one instance each, no globals.
//
//   host bytes ─▶ input() ─▶ FingerprintParser ─▶ handle(command) ─▶ answer() ─▶ fault ─▶ "tx" bytes
//                                   └──▶ "rx" records (every packet and discarded run)
//
// Faithful where the datasheets say: the module answers only packets with its address (and puts
// its address in the answer); with a password set, nothing but VfyPwd is served until it was
// verified (21); two character buffers (a buffer id other than 1 means buffer 2); RegModel combines
// buffers 1 and 2 into a template stored back in both, or fails 0A when they are different
// fingers; Search answers 09 with page and score 0 when nothing matches; a command whose checksum
// does not add up is answered 01. Where they are silent (Store from an empty buffer, an index page
// beyond 3, a deletion past the library's end) the choice made is noted at the place.
import { EventEmitter } from "node:events";
import { ErrorCode, LockerError } from "../../../errors.js";
import {
  Confirm,
  DEFAULT_ADDRESS,
  FingerprintParser,
  PacketId,
  decodeCommand,
  encodeAck,
  encodeIndexTable,
  encodeSysPara,
  hex,
  instructionName,
  type DecodedCommand,
} from "./codec.js";
import { serveStream, type ByteStream } from "../../byte-stream.js";

export const FINGERPRINT_FAULTS = ["none", "silent", "checksum", "garbage", "wrong-address"] as const;
/**
 * silent: no answer at all. checksum: the next answer(s) carry a corrupted checksum (then back to
 * none). garbage: noise, with a false header in it, before every answer. wrong-address: answers
 * carry another module address.
 */
export type FingerprintFault = (typeof FINGERPRINT_FAULTS)[number];

/** Noise with a stray header (EF 01 … packet id 99) and a lone EF, so the host's resync is exercised. */
export const FP_GARBAGE = Buffer.from([0x55, 0xef, 0x01, 0xff, 0xff, 0xff, 0xff, 0x99, 0x00, 0x03, 0xef]);

/** What a finger's image gives: a usable one, or the two ways Img2Tz fails (06 / 07). */
export type ImageQuality = "good" | "messy" | "few-features";

export type FingerprintRx = { rx: string; command: string; address: string } | { discarded: string; reason: string };

export interface FingerprintEmulatorEvents {
  /** Bytes the module puts on the line. */
  tx: [bytes: Buffer];
  /** Each packet received from the host, and each run of bytes that was none. */
  rx: [record: FingerprintRx];
}

export interface FingerprintEmulatorOptions {
  address?: number;
  /** Handshake password; 0 (the factory default) needs no VfyPwd. */
  password?: number;
  librarySize?: number;
  /** Match score per finger (default `defaultScore`). */
  scores?: Record<string, number>;
  defaultScore?: number;
}

export type { ByteStream } from "../../byte-stream.js";

/** A character buffer: a character file (one image's features) or a template (after RegModel). */
interface CharFile {
  finger: string;
  template: boolean;
}

export interface FingerprintEmulatorState {
  finger: string | null;
  library: Record<number, string>;
  fault: FingerprintFault;
  password: number;
  address: number;
  librarySize: number;
}

const MAX_FINGER_ID = 64;

export class FingerprintEmulator extends EventEmitter<FingerprintEmulatorEvents> {
  private readonly parser = new FingerprintParser();
  private address: number;
  private password: number;
  private verified = false;
  readonly librarySize: number;
  private readonly scores = new Map<string, number>();
  private readonly defaultScore: number;
  private readonly library = new Map<number, string>();
  private onSensor: { finger: string; quality: ImageQuality } | null = null;
  private image: { finger: string; quality: ImageQuality } | null = null;
  private readonly buffers: [CharFile | null, CharFile | null] = [null, null];
  private fault: FingerprintFault = "none";
  private corruptLeft = 0;
  /** Commands served, by instruction name (tests count polls with it). */
  readonly served = new Map<string, number>();

  constructor(opts: FingerprintEmulatorOptions = {}) {
    super();
    this.address = opts.address ?? DEFAULT_ADDRESS;
    this.password = opts.password ?? 0;
    this.librarySize = opts.librarySize ?? 200;
    if (!Number.isInteger(this.librarySize) || this.librarySize < 1 || this.librarySize > 1024) {
      throw new LockerError(ErrorCode.BadInput, `library size ${this.librarySize} is not within 1..1024`);
    }
    this.defaultScore = opts.defaultScore ?? 100;
    for (const [f, s] of Object.entries(opts.scores ?? {})) this.setScore(f, s);
  }

  /** Bytes from the host. */
  input(chunk: Uint8Array): void {
    for (const p of this.parser.push(chunk)) {
      if (p.kind === "discarded") {
        this.emit("rx", { discarded: hex(p.bytes), reason: p.reason });
        // A command damaged on the line: the module says it could not receive it.
        if (p.reason === "checksum" && p.bytes.length >= 6 && p.bytes.readUInt32BE(2) === this.address) this.answer(Confirm.PacketError);
        continue;
      }
      const { packet, raw } = p;
      const c = packet.pid === PacketId.Command ? decodeCommand(packet.payload) : undefined;
      const name = c ? (c.name === "unknown" || c.name === "malformed" ? instructionName(c.code) : c.name) : `packet ${packet.pid}`;
      this.emit("rx", { rx: hex(raw), command: name, address: packet.address.toString(16) });
      // Only packets for this module, and only commands, are answered.
      if (packet.address !== this.address || !c) continue;
      this.served.set(name, (this.served.get(name) ?? 0) + 1);
      this.handle(c);
    }
  }

  /** Serve a stream (a serial port): its data in, answers out. Returns a detach function. */
  attach(stream: ByteStream): () => void {
    return serveStream(this, stream);
  }

  // ---- the person at the sensor ----

  /** A finger on the sensor (replacing any other). */
  place(finger: string, quality: ImageQuality = "good"): void {
    this.onSensor = { finger: fingerId(finger), quality };
  }

  lift(): void {
    this.onSensor = null;
  }

  // ---- set-up and faults ----

  /** The score Search and Match give `finger` (so a test can land under or over a threshold). */
  setScore(finger: string, score: number): void {
    if (!Number.isInteger(score) || score < 0 || score > 0xffff) throw new LockerError(ErrorCode.BadInput, `score ${score} is not within 0..65535`);
    this.scores.set(fingerId(finger), score);
  }

  /** A new handshake password (as SetPwd would); it must be verified again. */
  setPassword(password: number): void {
    this.password = password >>> 0;
    this.verified = false;
  }

  setAddress(address: number): void {
    this.address = address >>> 0;
  }

  /** `checksum` corrupts the next `count` answers, then the module answers cleanly again. */
  setFault(fault: FingerprintFault, count = 1): void {
    this.fault = fault;
    this.corruptLeft = fault === "checksum" ? count : 0;
  }

  /** A template in `slot` without going through enrolment. */
  store(slot: number, finger: string): void {
    this.checkPage(slot);
    this.library.set(slot, fingerId(finger));
  }

  /** Power off and on: buffers and the password verification are lost, the library stays. */
  powerCycle(): void {
    this.verified = false;
    this.image = null;
    this.buffers[0] = this.buffers[1] = null;
    this.parser.flush();
  }

  /** Put raw bytes on the line (noise, a hand-made packet). */
  sendRaw(bytes: Uint8Array): void {
    this.emit("tx", Buffer.from(bytes));
  }

  templates(): Map<number, string> {
    return new Map([...this.library].sort((a, b) => a[0] - b[0]));
  }

  state(): FingerprintEmulatorState {
    return {
      finger: this.onSensor?.finger ?? null,
      library: Object.fromEntries(this.templates()),
      fault: this.fault,
      password: this.password,
      address: this.address,
      librarySize: this.librarySize,
    };
  }

  // ---- the module ----

  private handle(c: DecodedCommand): void {
    if (c.name === "unknown" || c.name === "malformed") return this.answer(c.name === "unknown" ? Confirm.Unsupported : Confirm.PacketError);
    if (c.name === "VfyPwd") {
      this.verified = c.password === this.password;
      return this.answer(this.verified ? Confirm.Ok : Confirm.WrongPassword);
    }
    // The datasheets: with its password changed, the module refuses every command until VfyPwd.
    if (this.password !== 0 && !this.verified) return this.answer(Confirm.MustVerifyPassword);
    switch (c.name) {
      case "HandShake":
        return this.answer(Confirm.Ok);
      case "GenImg":
        this.image = this.onSensor ? { ...this.onSensor } : null;
        return this.answer(this.image ? Confirm.Ok : Confirm.NoFinger);
      case "Img2Tz": {
        if (!this.image) return this.answer(Confirm.InvalidImage);
        if (this.image.quality === "messy") return this.answer(Confirm.ImageMessy);
        if (this.image.quality === "few-features") return this.answer(Confirm.FeatureFail);
        this.buffers[bufferIndex(c.buffer)] = { finger: this.image.finger, template: false };
        return this.answer(Confirm.Ok);
      }
      case "RegModel": {
        const [a, b] = this.buffers;
        if (!a || !b || a.finger !== b.finger) return this.answer(Confirm.CombineFail);
        this.buffers[0] = { finger: a.finger, template: true };
        this.buffers[1] = { finger: a.finger, template: true };
        return this.answer(Confirm.Ok);
      }
      case "Match": {
        const [a, b] = this.buffers;
        const hit = a && b && a.finger === b.finger;
        return this.answer(hit ? Confirm.Ok : Confirm.NoMatch, u16(hit ? this.score(a.finger) : 0));
      }
      case "Store": {
        if (c.page >= this.librarySize) return this.answer(Confirm.BadLocation);
        const f = this.buffers[bufferIndex(c.buffer)];
        // Not in the datasheets (a real module stores whatever the buffer holds): an empty buffer is refused 01.
        if (!f) return this.answer(Confirm.PacketError);
        this.library.set(c.page, f.finger);
        return this.answer(Confirm.Ok);
      }
      case "Search": {
        const f = this.buffers[bufferIndex(c.buffer)];
        const end = Math.min(this.librarySize, c.start + c.count);
        for (let page = c.start; f && page < end; page++) {
          if (this.library.get(page) === f.finger) return this.answer(Confirm.Ok, Buffer.from([...u16(page), ...u16(this.score(f.finger))]));
        }
        return this.answer(Confirm.NotFound, Buffer.alloc(4));
      }
      case "DeletChar": {
        // Past the library's end: 10 (fail to delete), nothing deleted.
        if (c.count < 1 || c.page + c.count > this.librarySize) return this.answer(Confirm.DeleteFail);
        for (let p = c.page; p < c.page + c.count; p++) this.library.delete(p);
        return this.answer(Confirm.Ok);
      }
      case "Empty":
        this.library.clear();
        return this.answer(Confirm.Ok);
      case "ReadSysPara": {
        const status = (this.verified || this.password === 0 ? 1 << 2 : 0) | (this.image ? 1 << 3 : 0);
        // System id 0x0009 as the ZFM manuals give it (the R503's says 0x0000); packet size code 2
        // (128 bytes, the R503's factory setting); baud N = 6 (57600).
        const d = encodeSysPara({ status, systemId: 0x0009, librarySize: this.librarySize, securityLevel: 3, address: this.address, packetSizeCode: 2, baudN: 6 });
        return this.answer(Confirm.Ok, d);
      }
      case "TempleteNum":
        return this.answer(Confirm.Ok, u16(this.library.size));
      case "ReadIndexTable":
        // Index pages are 0..3 (1024 templates); another one: 0B, beyond the library.
        if (c.index > 3) return this.answer(Confirm.BadLocation);
        return this.answer(Confirm.Ok, encodeIndexTable(this.library.keys(), c.index));
    }
  }

  private score(finger: string): number {
    return this.scores.get(finger) ?? this.defaultScore;
  }

  private answer(code: number, data: Uint8Array = Buffer.alloc(0)): void {
    switch (this.fault) {
      case "silent":
        return;
      case "garbage":
        this.emit("tx", Buffer.concat([FP_GARBAGE, encodeAck(this.address, code, data)]));
        return;
      case "wrong-address":
        this.emit("tx", encodeAck((this.address ^ 0x0000_0001) >>> 0, code, data));
        return;
      case "checksum": {
        const bytes = encodeAck(this.address, code, data);
        bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
        if (--this.corruptLeft <= 0) this.fault = "none";
        this.emit("tx", bytes);
        return;
      }
      case "none":
        this.emit("tx", encodeAck(this.address, code, data));
    }
  }

  private checkPage(page: number): void {
    if (!Number.isInteger(page) || page < 0 || page >= this.librarySize) {
      throw new LockerError(ErrorCode.BadInput, `slot ${page} is not within 0..${this.librarySize - 1}`, { slot: page });
    }
  }
}

/** Buffer id 1 is CharBuffer1; the ZFM manuals: "other values would be processed as CharBuffer2". */
const bufferIndex = (id: number): 0 | 1 => (id === 1 ? 0 : 1);

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);

function fingerId(f: string): string {
  const t = f.trim();
  if (!t || t.length > MAX_FINGER_ID) throw new LockerError(ErrorCode.BadInput, `a finger id is 1..${MAX_FINGER_ID} characters`);
  return t;
}

