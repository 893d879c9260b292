// An emulated GPIO pin bank behind the same GpioLineOpener as onoff: levels, edges, contact bounce,
// missed interrupts and export failures. One instance per test or simulated bank; no globals.
//
//   driver ──open(n, dir, edge)──▶ GpioEmulator ──▶ PinModel { exported, direction, edge, level }
//   test   ──drive / bounce / setSilently──▶ PinModel ──edge──▶ watchers (as onoff's epoll would)
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { GpioLine, GpioLineOpener, Level, LineCallback, LineDirection, LineEdge } from "./line.js";

interface PinModel {
  exported: boolean;
  direction: LineDirection;
  edge: LineEdge;
  /** The level on the pin: what an input reads, what an output drives. */
  level: Level;
  watchers: LineCallback[];
  /** Every level an output was set to, with the (possibly fake) clock at that moment. */
  writes: { level: Level; at: number }[];
}

/** A Node-style system error, as fs raises it for sysfs. */
export function sysError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

export class GpioEmulator implements GpioLineOpener {
  private readonly pins = new Map<number, PinModel>();
  private readonly exportErrors = new Map<number | "any", string>();
  /** Lines ever exported, in order (sysfs numbers). */
  readonly exports: number[] = [];

  private pin(n: number): PinModel {
    let p = this.pins.get(n);
    if (!p) this.pins.set(n, (p = { exported: false, direction: "in", edge: "none", level: 0, watchers: [], writes: [] }));
    return p;
  }

  /** Another process unexports line `n` (reads and writes fail with ENOENT), or exports it again. */
  setExported(n: number, exported: boolean): void {
    this.pin(n).exported = exported;
  }

  /** Make export of line `n` (or of any line) fail with an errno code, as sysfs does. */
  failExport(n: number | "any", code = "EACCES"): void {
    this.exportErrors.set(n, code);
  }

  async open(n: number, direction: LineDirection, edge: LineEdge): Promise<GpioLine> {
    const code = this.exportErrors.get(n) ?? this.exportErrors.get("any");
    if (code) throw sysError(code, `write /sys/class/gpio/export ${n}`);
    const p = this.pin(n);
    p.exported = true;
    p.direction = direction;
    p.edge = direction === "in" ? edge : "none";
    p.watchers = [];
    if (direction !== "in") this.setOutput(p, direction === "high" ? 1 : 0);
    this.exports.push(n);
    return this.line(n, p);
  }

  private line(n: number, p: PinModel): GpioLine {
    const live = () => {
      if (!p.exported) throw sysError("ENOENT", `/sys/class/gpio/gpio${n}/value: line not exported`);
    };
    return {
      read: async () => {
        live();
        return p.level;
      },
      write: async (value) => {
        live();
        if (p.direction === "in") throw sysError("EPERM", `gpio${n} is an input`);
        this.setOutput(p, value);
      },
      watch: (callback) => {
        live();
        p.watchers.push(callback);
      },
      unwatchAll: () => {
        p.watchers = [];
      },
      unexport: () => {
        p.exported = false;
        p.watchers = [];
      },
    };
  }

  private setOutput(p: PinModel, level: Level): void {
    p.level = level;
    p.writes.push({ level, at: Date.now() });
  }

  /** The outside world drives an input to `level`; watchers see the edge if it is enabled. */
  drive(n: number, level: Level): void {
    const p = this.pin(n);
    if (p.level === level) return;
    p.level = level;
    const enabled = p.edge === "both" || (p.edge === "rising" && level === 1) || (p.edge === "falling" && level === 0);
    if (p.exported && enabled) for (const w of [...p.watchers]) w(null, level);
  }

  /** The level changes but the interrupt is lost (what reconciliation reads exist for). */
  setSilently(n: number, level: Level): void {
    this.pin(n).level = level;
  }

  /** A bouncing contact: `edges` alternating levels `everyMs` apart, ending at `final`. */
  bounce(n: number, final: Level, opts: { edges: number; everyMs: number }): Promise<void> {
    const levels: Level[] = [];
    let at: Level = this.pin(n).level;
    for (let i = 0; i < opts.edges || at !== final; i++) levels.push((at = at === 1 ? 0 : 1));
    return new Promise((resolve) => {
      const step = (i: number) => {
        const level = levels[i];
        if (level === undefined) return resolve();
        this.drive(n, level);
        setTimeout(() => step(i + 1), opts.everyMs);
      };
      step(0);
    });
  }

  level(n: number): Level {
    return this.pin(n).level;
  }

  isExported(n: number): boolean {
    return this.pins.get(n)?.exported ?? false;
  }

  direction(n: number): LineDirection {
    return this.pin(n).direction;
  }

  edge(n: number): LineEdge {
    return this.pin(n).edge;
  }

  writes(n: number): readonly { level: Level; at: number }[] {
    return this.pin(n).writes;
  }
}

export interface FakeChip {
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

/** /sys/class/gpio on a Pi 4 with Raspberry Pi OS Bookworm (kernel 6.6+). */
export const PI4_BOOKWORM_CHIPS: readonly FakeChip[] = [
  { name: "gpiochip512", label: "pinctrl-bcm2711", base: 512, ngpio: 58 },
  { name: "gpiochip570", label: "raspberrypi-exp-gpio", base: 570, ngpio: 8 },
];

/** /sys/class/gpio on a Pi 5 with Bookworm: the SoC's own banks first, the header on RP1 at 571. */
export const PI5_BOOKWORM_CHIPS: readonly FakeChip[] = [
  { name: "gpiochip512", label: "gpio-brcmstb@107d508500", base: 512, ngpio: 32 },
  { name: "gpiochip544", label: "gpio-brcmstb@107d508520", base: 544, ngpio: 4 },
  { name: "gpiochip548", label: "gpio-brcmstb@107d517c00", base: 548, ngpio: 17 },
  { name: "gpiochip565", label: "gpio-brcmstb@107d517c20", base: 565, ngpio: 6 },
  { name: "gpiochip571", label: "pinctrl-rp1", base: 571, ngpio: 54 },
];

/** Writes <root>/class/gpio with these chips and export/unexport files, for chip discovery. */
export async function writeFakeSysfs(root: string, chips: readonly FakeChip[]): Promise<void> {
  const dir = join(root, "class", "gpio");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "export"), "");
  await writeFile(join(dir, "unexport"), "");
  for (const c of chips) {
    await mkdir(join(dir, c.name), { recursive: true });
    await writeFile(join(dir, c.name, "label"), `${c.label}\n`);
    await writeFile(join(dir, c.name, "base"), `${c.base}\n`);
    await writeFile(join(dir, c.name, "ngpio"), `${c.ngpio}\n`);
  }
}
