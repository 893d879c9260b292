// Register-level MCP23017 (Microchip DS20001952C), IOCON.BANK = 0 layout (Table 3-1), written
// from the datasheet rather than from the driver so the tests check one against the other.
//
//   - A write transaction's first byte is the register pointer; further bytes go to successive
//     registers (SEQOP = 0), or alternate between the A/B pair (SEQOP = 1, section 3.2.1).
//   - GPIO reads: input pins give the outside level (1 with pull-up when floating) XOR IPOL;
//     output pins give OLAT. Writing GPIO writes OLAT (section 3.5.10).
//   - Interrupt on change (section 3.6): INTCON = 0 compares with the previous pin value,
//     INTCON = 1 with DEFVAL; INTF flags the pin, INTCAP captures the port; reading GPIO or INTCAP
//     clears it. INTA/INTB follow INTFA/INTFB (OR-ed with MIRROR), open-drain with ODR.
// BANK = 1 is not modelled: setting it is recorded in `unsupported`.
import { nack, type I2cTarget } from "./bus.js";

type Level = 0 | 1;

export const MCP_REGISTERS = [
  "IODIRA", "IODIRB", "IPOLA", "IPOLB", "GPINTENA", "GPINTENB", "DEFVALA", "DEFVALB",
  "INTCONA", "INTCONB", "IOCON", "IOCON", "GPPUA", "GPPUB", "INTFA", "INTFB",
  "INTCAPA", "INTCAPB", "GPIOA", "GPIOB", "OLATA", "OLATB",
] as const;
export type McpRegister = (typeof MCP_REGISTERS)[number];

const IOCON_MIRROR = 0x40;
const IOCON_SEQOP = 0x20;
const IOCON_ODR = 0x04;
const IOCON_INTPOL = 0x02;
const IOCON_BANK = 0x80;

export class Mcp23017Model implements I2cTarget {
  /** Register file by BANK = 0 address (IOCON lives at 0x0A and 0x0B). */
  private readonly regs = new Uint8Array(0x16);
  private pointer = 0;
  /** What the outside world drives on each pin (0-7 = A, 8-15 = B); null = floating. */
  private readonly external: (Level | null)[] = new Array<Level | null>(16).fill(null);
  /** Pin levels at the last interrupt evaluation (INTCON = 0 compares against these). */
  private previous = 0;
  private intLevels: [Level, Level] = [1, 1];
  /** Called when INTA (0) or INTB (1) changes level. */
  onInterrupt: ((pin: 0 | 1, level: Level) => void) | null = null;
  readonly unsupported: string[] = [];

  constructor() {
    this.regs[0x00] = 0xff; // IODIRA: all inputs at power-on
    this.regs[0x01] = 0xff;
    this.previous = this.pinLevels();
  }

  reg(name: McpRegister): number {
    return this.regs[MCP_REGISTERS.indexOf(name)] ?? 0;
  }

  /** The outside world drives pin `pin` (0-7 = GPA0-7, 8-15 = GPB0-7), or lets it float. */
  setPin(pin: number, level: Level | null): void {
    this.external[pin] = level;
    this.evaluateInterrupts();
  }

  /** The level on a pin: an output's latch, an input's outside level or pull-up (1) or 0 floating. */
  pinLevel(pin: number): Level {
    const port = pin >> 3;
    const bit = 1 << (pin & 7);
    if (!((this.regs[0x00 + port] ?? 0xff) & bit)) return (this.regs[0x14 + port] ?? 0) & bit ? 1 : 0;
    const driven = this.external[pin];
    if (driven !== null && driven !== undefined) return driven;
    return (this.regs[0x0c + port] ?? 0) & bit ? 1 : 0;
  }

  /** INTA (0) or INTB (1) as the Pi's pin sees it (open-drain released = pulled up = 1). */
  intLevel(pin: 0 | 1): Level {
    return this.intLevels[pin];
  }

  private pinLevels(): number {
    let v = 0;
    for (let pin = 0; pin < 16; pin++) v |= this.pinLevel(pin) << pin;
    return v;
  }

  /** GPIO as read: outputs give OLAT, inputs the pin XOR IPOL. */
  private gpio(port: number): number {
    const iodir = this.regs[0x00 + port] ?? 0xff;
    const pins = (this.pinLevels() >> (8 * port)) & 0xff;
    const olat = this.regs[0x14 + port] ?? 0;
    return ((pins ^ (this.regs[0x02 + port] ?? 0)) & iodir) | (olat & ~iodir & 0xff);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const [first, ...data] = bytes;
    if (first === undefined || first >= 0x16) throw nack();
    this.pointer = first;
    for (const b of data) {
      this.writeRegister(this.pointer, b);
      this.advance();
    }
    this.evaluateInterrupts();
  }

  read(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      out[i] = this.readRegister(this.pointer);
      this.advance();
    }
    this.evaluateInterrupts();
    return out;
  }

  private advance(): void {
    if ((this.regs[0x0a] ?? 0) & IOCON_SEQOP) this.pointer ^= 1;
    else this.pointer = (this.pointer + 1) % 0x16;
  }

  private writeRegister(at: number, value: number): void {
    const name = MCP_REGISTERS[at];
    if (name === "IOCON") {
      if (value & IOCON_BANK) this.unsupported.push("IOCON.BANK=1");
      this.regs[0x0a] = this.regs[0x0b] = value;
    } else if (name === "INTFA" || name === "INTFB" || name === "INTCAPA" || name === "INTCAPB") {
      // read-only
    } else if (name === "GPIOA" || name === "GPIOB") {
      this.regs[at + 2] = value; // writing GPIO writes OLAT
    } else {
      this.regs[at] = value;
    }
  }

  private readRegister(at: number): number {
    const name = MCP_REGISTERS[at];
    const port = at & 1;
    if (name === "GPIOA" || name === "GPIOB") {
      const v = this.gpio(port);
      this.clearInterrupt(port);
      return v;
    }
    if (name === "INTCAPA" || name === "INTCAPB") {
      const v = this.regs[at] ?? 0;
      this.clearInterrupt(port);
      return v;
    }
    return this.regs[at] ?? 0;
  }

  private clearInterrupt(port: number): void {
    this.regs[0x0e + port] = 0;
  }

  private evaluateInterrupts(): void {
    const now = this.pinLevels();
    for (const port of [0, 1]) {
      const enabled = (this.regs[0x04 + port] ?? 0) & (this.regs[0x00 + port] ?? 0);
      const pins = (now >> (8 * port)) & 0xff;
      const against = ((this.regs[0x08 + port] ?? 0) & (this.regs[0x06 + port] ?? 0)) | (~(this.regs[0x08 + port] ?? 0) & ((this.previous >> (8 * port)) & 0xff));
      const flagged = (pins ^ against) & enabled & 0xff;
      if (flagged && !(this.regs[0x0e + port] ?? 0)) this.regs[0x10 + port] = this.gpio(port); // INTCAP
      this.regs[0x0e + port] = ((this.regs[0x0e + port] ?? 0) | flagged) & 0xff;
    }
    this.previous = now;
    this.updateIntPins();
  }

  private updateIntPins(): void {
    const iocon = this.regs[0x0a] ?? 0;
    let a = (this.regs[0x0e] ?? 0) !== 0;
    let b = (this.regs[0x0f] ?? 0) !== 0;
    if (iocon & IOCON_MIRROR) a = b = a || b;
    const level = (active: boolean): Level => {
      if (iocon & IOCON_ODR) return active ? 0 : 1; // open drain, pulled up outside
      return (active ? 1 : 0) === (iocon & IOCON_INTPOL ? 1 : 0) ? 1 : 0;
    };
    const next: [Level, Level] = [level(a), level(b)];
    for (const pin of [0, 1] as const) {
      if (next[pin] !== this.intLevels[pin]) {
        this.intLevels[pin] = next[pin];
        this.onInterrupt?.(pin, next[pin]);
      }
    }
  }
}
