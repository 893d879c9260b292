// A seeded PRNG for the fuzzers: the same seed gives the same inputs on every machine and in every
// run (sfc32, seeded through splitmix32; no Math.random anywhere in a fuzzer).

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A fresh generator for one part of a run, so parts do not shift each other's inputs. */
  fork(salt: number): Rng {
    return new Rng((this.seed ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  /** One of `choices` with probability proportional to its weight. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((s, [w]) => s + w, 0);
    let x = this.float() * total;
    for (const [w, v] of choices) {
      if ((x -= w) < 0) return v;
    }
    return choices[choices.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** `n` characters drawn from `alphabet` (a string of single code points). */
  string(alphabet: string, n: number): string {
    const chars = [...alphabet];
    let s = "";
    for (let i = 0; i < n; i++) s += chars[this.int(0, chars.length - 1)]!;
    return s;
  }

  digits(n: number): string {
    return this.string("0123456789", n);
  }

  hex(n: number): string {
    return this.string("0123456789ABCDEFabcdef", n);
  }

  /** Text that is hard on parsers: control characters, lone surrogates, emoji, quotes, NUL. */
  junk(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) {
      s += this.weighted<() => string>([
        [4, () => String.fromCharCode(this.int(0x20, 0x7e))],
        [2, () => String.fromCharCode(this.int(0, 0x1f))],
        [1, () => String.fromCharCode(this.int(0x80, 0x7ff))],
        [1, () => String.fromCharCode(this.int(0xd800, 0xdfff))],
        [1, () => this.pick(["😀", "\u202e", "\ufeff", "\u0000", "\\", '"', "\u2028", "Ω", "٣"])],
      ])();
    }
    return s;
  }

  /** Any JSON value, `depth` levels deep at most. */
  json(depth = 3): unknown {
    const leaf = (): unknown =>
      this.weighted<() => unknown>([
        [2, () => this.int(-5, 5)],
        [1, () => this.pick([0, -0, 1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 0.5, -1, 4294967296, 1e-7])],
        [1, () => this.float() * 1e6 - 5e5],
        [2, () => this.junk(this.int(0, 12))],
        [1, () => this.digits(this.int(0, 14))],
        [1, () => this.pick([true, false, null])],
        [1, () => this.pick(["", "A01", "B12", "Z99", "107", "open", "__proto__", "constructor", "toString", "null", "-1"])],
      ])();
    if (depth <= 0) return leaf();
    return this.weighted<() => unknown>([
      [5, leaf],
      [1, () => Array.from({ length: this.int(0, 4) }, () => this.json(depth - 1))],
      [
        2,
        () => {
          const o: Record<string, unknown> = {};
          // (defineProperty: `o["__proto__"] = v` would set the prototype, not a key JSON shows)
          for (let i = this.int(0, 4); i > 0; i--) Object.defineProperty(o, this.key(), { value: this.json(depth - 1), enumerable: true, writable: true, configurable: true });
          return o;
        },
      ],
    ])();
  }

  /** An object key: mostly ones the schemas know, sometimes hostile ones. */
  key(): string {
    return this.weighted<() => string>([
      [3, () => this.pick(["id", "args", "cmd", "user", "issuedAt", "expiresAt", "sig", "compartment", "reason", "parcel", "code", "size", "enabled"])],
      [1, () => this.pick(["__proto__", "constructor", "prototype", "hasOwnProperty", "", " id", "ID"])],
      [1, () => this.junk(this.int(1, 8))],
    ])();
  }
}
