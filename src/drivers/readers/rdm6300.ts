// RDM6300 (125 kHz EM4100) frames on a 9600 8N1 serial line, sent about every 100 ms while a tag
// is in the field:
//
//   02 | 10 ASCII hex: 2 version/customer + 8 card id | 2 ASCII hex: XOR of the 5 data bytes | 03
//
// A stream parser: bytes in any chunking → card reads out; anything else comes out as a
// `discarded` item with its reason (a run of garbage between frames, a truncated frame, a bad
// checksum, a malformed frame), never silently dropped. STX (0x02) cannot occur inside a frame (hex digits only), so a new STX
// before 14 bytes means the frame in progress was cut short.

const STX = 0x02;
const ETX = 0x03;
export const RDM6300_FRAME = 14;
/** Bytes without an STX kept before they are reported as garbage anyway. */
const MAX_GARBAGE = 64;

export type Rdm6300Item =
  | { kind: "tag"; /** version + card, 10 hex digits, uppercase */ full: string; /** the 8-digit card id, uppercase */ card: string }
  | { kind: "discarded"; reason: "garbage" | "truncated" | "malformed" | "checksum"; bytes: Buffer };

/** XOR of the 5 data bytes written as 10 hex digits. */
export function rdm6300Checksum(hex10: string): number {
  let x = 0;
  for (let i = 0; i < 10; i += 2) x ^= parseInt(hex10.slice(i, i + 2), 16);
  return x;
}

/** A frame for `hex10` (tests, emulators). */
export function rdm6300Frame(hex10: string): Buffer {
  const sum = rdm6300Checksum(hex10).toString(16).toUpperCase().padStart(2, "0");
  return Buffer.concat([Buffer.from([STX]), Buffer.from(`${hex10.toUpperCase()}${sum}`, "ascii"), Buffer.from([ETX])]);
}

/** One complete 14-byte frame (STX … ETX) to a read, or why not. */
export function decodeRdm6300Frame(frame: Uint8Array): Rdm6300Item {
  const bytes = Buffer.from(frame);
  const body = bytes.subarray(1, 13).toString("latin1");
  if (bytes.length !== RDM6300_FRAME || bytes[0] !== STX || bytes[13] !== ETX || !/^[0-9A-Fa-f]{12}$/.test(body)) {
    return { kind: "discarded", reason: "malformed", bytes };
  }
  const full = body.slice(0, 10).toUpperCase();
  if (rdm6300Checksum(full) !== parseInt(body.slice(10), 16)) return { kind: "discarded", reason: "checksum", bytes };
  return { kind: "tag", full, card: full.slice(2) };
}

export class Rdm6300Parser {
  private buf = Buffer.alloc(0);

  push(chunk: Uint8Array): Rdm6300Item[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Rdm6300Item[] = [];
    for (;;) {
      const start = this.buf.indexOf(STX);
      if (start < 0) {
        // Garbage is reported as one run when the next frame starts (or when it grows long).
        if (this.buf.length >= MAX_GARBAGE) out.push(this.take("garbage", this.buf.length));
        return out;
      }
      if (start > 0) out.push(this.take("garbage", start));
      const next = this.buf.indexOf(STX, 1);
      if (next > 0 && next < RDM6300_FRAME) {
        out.push(this.take("truncated", next));
        continue;
      }
      if (this.buf.length < RDM6300_FRAME) return out; // wait for the rest
      out.push(decodeRdm6300Frame(this.buf.subarray(0, RDM6300_FRAME)));
      this.buf = this.buf.subarray(RDM6300_FRAME);
    }
  }

  private take(reason: "garbage" | "truncated", n: number): Rdm6300Item {
    const bytes = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    return { kind: "discarded", reason, bytes };
  }

  /** Forget a frame in progress (the port was reopened). */
  reset(): void {
    this.buf = Buffer.alloc(0);
  }
}
