// RDM6300 (125 kHz EM4100) frames on a 9600 8N1 serial line, sent about every 100 ms while a tag
// is in the field:
//
//   02 | 10 ASCII hex: 2 version/customer + 8 card id | 2 ASCII hex: XOR of the 5 data bytes | 03
//
// A stream parser: bytes in any chunking → valid card ids out; anything else (garbage, a wrong
// checksum, a truncated frame) is counted as discarded, never silently dropped.

const STX = 0x02;
const ETX = 0x03;
export const RDM6300_FRAME = 14;

export interface Rdm6300Read {
  /** The 10 hex digits (version + card), uppercase. */
  full: string;
  /** The 8-digit card id, uppercase. */
  card: string;
}

export function rdm6300Checksum(hex10: string): number {
  let x = 0;
  for (let i = 0; i < 10; i += 2) x ^= parseInt(hex10.slice(i, i + 2), 16);
  return x;
}

/** A frame for `hex10` (tests, the emulator). */
export function rdm6300Frame(hex10: string): Buffer {
  const sum = rdm6300Checksum(hex10).toString(16).toUpperCase().padStart(2, "0");
  return Buffer.concat([Buffer.from([STX]), Buffer.from(`${hex10.toUpperCase()}${sum}`, "ascii"), Buffer.from([ETX])]);
}

export class Rdm6300Parser {
  private buf = Buffer.alloc(0);
  /** Bytes thrown away: garbage between frames, bad checksums, truncated frames. */
  discarded = 0;
  badChecksums = 0;

  push(chunk: Uint8Array): Rdm6300Read[] {
    this.buf = Buffer.concat([this.buf, chunk]);
    const out: Rdm6300Read[] = [];
    for (;;) {
      const start = this.buf.indexOf(STX);
      if (start < 0) {
        this.discarded += this.buf.length;
        this.buf = Buffer.alloc(0);
        return out;
      }
      if (start > 0) {
        this.discarded += start;
        this.buf = this.buf.subarray(start);
      }
      if (this.buf.length < RDM6300_FRAME) return out; // wait for the rest
      const body = this.buf.subarray(1, 13).toString("ascii");
      const frameOk = this.buf[13] === ETX && /^[0-9A-Fa-f]{12}$/.test(body);
      if (!frameOk) {
        // Truncated (a new STX inside) or garbage: drop this STX and look for the next.
        this.discarded += 1;
        this.buf = this.buf.subarray(1);
        continue;
      }
      this.buf = this.buf.subarray(RDM6300_FRAME);
      const hex10 = body.slice(0, 10).toUpperCase();
      if (rdm6300Checksum(hex10) !== parseInt(body.slice(10), 16)) {
        this.badChecksums++;
        this.discarded += RDM6300_FRAME;
        continue;
      }
      out.push({ full: hex10, card: hex10.slice(2) });
    }
  }
}
