// The stream layer shared by the RS485 board protocols: serial chunks in, whole frames out.
// A protocol supplies a `framer` that looks at the start of the buffer and says "a frame of n bytes",
// "not enough bytes yet" or "no frame can start here". Bytes that start no frame are skipped one
// at a time (a real frame may begin inside a damaged one) and come out as one counted "discarded"
// item per run, never dropped silently.
//
//   chunk ─▶ buffer ─▶ framer(buffer) ─┬─ frame(n)    ─▶ { kind: "frame" }, consume n
//                                       ├─ incomplete  ─▶ wait for the next chunk
//                                       └─ invalid     ─▶ skip 1 byte into the discard run

export type Framing<F> =
  | { kind: "frame"; length: number; frame: F }
  | { kind: "incomplete" }
  | { kind: "invalid"; reason: string };

export type Framer<F> = (buffer: Buffer) => Framing<F>;

export type Parsed<F> =
  | { kind: "frame"; frame: F; raw: Buffer }
  | { kind: "discarded"; bytes: Buffer; reason: string };

export interface ParserStats {
  frames: number;
  /** Bytes that were not part of any valid frame: noise, bad checksums, truncated frames. */
  discardedBytes: number;
  /** Runs of discarded bytes (one per `discarded` item). */
  discards: number;
}

export class FrameParser<F> {
  private buffer: Buffer = Buffer.alloc(0);
  readonly stats: ParserStats = { frames: 0, discardedBytes: 0, discards: 0 };

  constructor(private readonly framer: Framer<F>) {}

  /** Bytes held while waiting for the rest of a frame. */
  get pending(): number {
    return this.buffer.length;
  }

  push(chunk: Uint8Array): Parsed<F>[] {
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    const out: Parsed<F>[] = [];
    let skipFrom = -1;
    let skipReason = "";
    let at = 0;
    const endSkip = (to: number) => {
      if (skipFrom < 0) return;
      out.push(this.discard(this.buffer.subarray(skipFrom, to), skipReason));
      skipFrom = -1;
    };
    while (at < this.buffer.length) {
      const view = this.buffer.subarray(at);
      const f = this.framer(view);
      if (f.kind === "incomplete") break;
      if (f.kind === "invalid") {
        if (skipFrom < 0) {
          skipFrom = at;
          skipReason = f.reason;
        }
        at++;
        continue;
      }
      endSkip(at);
      out.push({ kind: "frame", frame: f.frame, raw: Buffer.from(view.subarray(0, f.length)) });
      this.stats.frames++;
      at += f.length;
    }
    endSkip(at);
    this.buffer = Buffer.from(this.buffer.subarray(at));
    return out;
  }

  /** Give up on whatever is buffered (a reply that never completed): counted as discarded. */
  flush(reason = "truncated frame"): Parsed<F>[] {
    if (this.buffer.length === 0) return [];
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return [this.discard(rest, reason)];
  }

  private discard(bytes: Buffer, reason: string): Parsed<F> {
    this.stats.discardedBytes += bytes.length;
    this.stats.discards++;
    return { kind: "discarded", bytes: Buffer.from(bytes), reason };
  }
}

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
