// A fake GPIO character device for tests: the chips, who holds which line, output levels, input
// levels the test drives, and edge events to the tools that monitor them. The fake gpiod tools
// (tools.ts) are real processes that talk to it over a unix socket (protocol.ts); closing a
// connection releases its lines, as Linux does when a process holding a line request dies.
//
//   test ──drive(chip, offset, level)──▶ FakeGpioKernel ──edge──▶ gpiomon (a child process) ──▶ driver
//   driver ──stdin "set 17=1"──▶ gpioset (a child process) ──set──▶ FakeGpioKernel ──▶ level(), history()
//
// What a released output does is the chip driver's business on real hardware (the Pi's pinctrl
// may keep driving it, or turn it into an input): `releasedOutputs` picks one of the two.
import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChipInfo, Edge, KernelEvent, Level, Reply, Request } from "./protocol.js";

export interface FakeChipSpec {
  name: string;
  label: string;
  ngpio: number;
  /** Line names by offset; default the Pi's "GPIO<n>" for pinctrl chips, else unnamed. */
  names?: (string | null)[];
}

/** A Pi 4 on Raspberry Pi OS Trixie: the header on gpiochip0, the firmware's expander on gpiochip1. */
export const PI4_CHARDEV_CHIPS: readonly FakeChipSpec[] = [
  { name: "gpiochip0", label: "pinctrl-bcm2711", ngpio: 58 },
  { name: "gpiochip1", label: "raspberrypi-exp-gpio", ngpio: 8 },
];

/** A Pi 5 as early Bookworm kernels numbered it: the SoC's own banks first, the header (RP1) on gpiochip4. */
export const PI5_CHARDEV_CHIPS: readonly FakeChipSpec[] = [
  { name: "gpiochip0", label: "gpio-brcmstb@107d508500", ngpio: 32 },
  { name: "gpiochip1", label: "gpio-brcmstb@107d508520", ngpio: 4 },
  { name: "gpiochip2", label: "gpio-brcmstb@107d517c00", ngpio: 17 },
  { name: "gpiochip3", label: "gpio-brcmstb@107d517c20", ngpio: 6 },
  { name: "gpiochip4", label: "pinctrl-rp1", ngpio: 54 },
];

interface LineState {
  name: string | null;
  direction: "input" | "output";
  level: Level;
  holder: Req | null;
  /** Every level change, with whether a request drove it (an output) or it floated/was driven from outside. */
  history: { level: Level; driven: boolean; at: number }[];
}

interface ChipState {
  spec: FakeChipSpec;
  lines: LineState[];
  present: boolean;
  denied: boolean;
}

interface Client {
  socket: Socket;
  pid: number;
  tool: string;
  argv: string[];
  reqs: Set<Req>;
}

interface Req {
  handle: number;
  client: Client;
  chip: ChipState;
  offsets: number[];
  direction: "input" | "output";
  edge: Edge;
  consumer: string;
}

let sockets = 0;

export class FakeGpioKernel {
  readonly socketPath = join(tmpdir(), `gpiod-emu-${process.pid}-${++sockets}-${Date.now()}.sock`);
  private readonly chips: ChipState[] = [];
  private readonly clients = new Set<Client>();
  private readonly reqs = new Map<number, Req>();
  private server: Server | null = null;
  private nextHandle = 1;
  private readonly t0 = process.hrtime.bigint();

  constructor(
    specs: readonly FakeChipSpec[],
    private readonly opts: { releasedOutputs?: "input" | "persist" } = {},
  ) {
    for (const s of specs) this.addChip(s);
  }

  addChip(spec: FakeChipSpec): void {
    const names = spec.names ?? Array.from({ length: spec.ngpio }, (_, i) => (spec.label.startsWith("pinctrl-") ? `GPIO${i}` : null));
    this.chips.push({
      spec,
      present: true,
      denied: false,
      lines: Array.from({ length: spec.ngpio }, (_, i) => ({ name: names[i] ?? null, direction: "input", level: 0, holder: null, history: [] })),
    });
  }

  async start(): Promise<string> {
    rmSync(this.socketPath, { force: true });
    this.server = createServer((s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.socketPath, resolve);
    });
    return this.socketPath;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
    rmSync(this.socketPath, { force: true });
  }

  // ── what a test does to the hardware ───────────────────────────────────

  /** The outside world drives an input: a monitoring tool gets the edge if it asked for it. */
  drive(chip: string, offset: number, level: Level): void {
    const c = this.chip(chip);
    const line = c.lines[offset]!;
    if (line.holder?.direction === "output") throw new Error(`${chip} line ${offset} is an output held by ${line.holder.client.tool}`);
    if (line.level === level) return;
    line.level = level;
    line.history.push({ level, driven: false, at: Date.now() });
    const r = line.holder;
    if (!r || !c.present) return;
    const rising = level === 1;
    if (r.edge === "both" || (r.edge === "rising" && rising) || (r.edge === "falling" && !rising)) {
      const ns = process.hrtime.bigint() - this.t0;
      this.send(r.client, { ev: "edge", handle: r.handle, offset, rising, sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) });
    }
  }

  /** The chip disappears (unbound, unplugged): new opens fail ENOENT, held requests get ENODEV. */
  removeChip(name: string): void {
    const c = this.chip(name);
    c.present = false;
    for (const r of this.reqs.values()) if (r.chip === c) this.send(r.client, { ev: "gone", handle: r.handle });
  }

  restoreChip(name: string): void {
    this.chip(name).present = true;
  }

  /** Opens of this chip fail EACCES (the user is not in group gpio). */
  deny(name: string, denied = true): void {
    this.chip(name).denied = denied;
  }

  level(chip: string, offset: number): Level {
    return this.chip(chip).lines[offset]!.level;
  }

  direction(chip: string, offset: number): "input" | "output" {
    return this.chip(chip).lines[offset]!.direction;
  }

  history(chip: string, offset: number): readonly { level: Level; driven: boolean; at: number }[] {
    return this.chip(chip).lines[offset]!.history;
  }

  /** Who holds a line: the tool, its pid and the consumer name it gave. */
  holder(chip: string, offset: number): { tool: string; pid: number; consumer: string; edge: Edge } | null {
    const r = this.chip(chip).lines[offset]!.holder;
    return r ? { tool: r.client.tool, pid: r.client.pid, consumer: r.consumer, edge: r.edge } : null;
  }

  /** The tool processes connected now. */
  processes(): { pid: number; tool: string; argv: string[] }[] {
    return [...this.clients].filter((c) => c.pid > 0).map((c) => ({ pid: c.pid, tool: c.tool, argv: c.argv }));
  }

  // ── the device ──────────────────────────────────────────────────────────

  private chip(name: string): ChipState {
    const c = this.chips.find((x) => x.spec.name === name);
    if (!c) throw new Error(`no fake chip ${name}`);
    return c;
  }

  private info(c: ChipState): ChipInfo {
    return { name: c.spec.name, label: c.spec.label, ngpio: c.spec.ngpio, names: c.lines.map((l) => l.name) };
  }

  private accept(socket: Socket): void {
    const client: Client = { socket, pid: 0, tool: "?", argv: [], reqs: new Set() };
    this.clients.add(client);
    let buf = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line) this.handle(client, JSON.parse(line) as Request);
      }
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      this.clients.delete(client);
      for (const r of client.reqs) this.release(r);
    });
  }

  private send(client: Client, msg: Reply | KernelEvent): void {
    if (!client.socket.destroyed) client.socket.write(`${JSON.stringify(msg)}\n`);
  }

  private handle(client: Client, req: Request): void {
    const reply = (r: Omit<Reply, "id">) => this.send(client, { id: req.id, ...r });
    switch (req.op) {
      case "hello":
        client.pid = req.pid;
        client.tool = req.tool;
        client.argv = req.argv;
        return reply({});
      case "list":
        return reply({ chips: this.chips.filter((c) => c.present).map((c) => this.info(c)) });
      case "open": {
        const c = this.chips.find((x) => x.spec.name === req.chip && x.present);
        if (!c) return reply({ errno: "ENOENT" });
        if (c.denied) return reply({ errno: "EACCES" });
        return reply({ chip: this.info(c) });
      }
      case "request": {
        const c = this.chips.find((x) => x.spec.name === req.chip && x.present);
        if (!c) return reply({ errno: "ENOENT" });
        if (c.denied) return reply({ errno: "EACCES" });
        if (req.offsets.some((o) => o < 0 || o >= c.spec.ngpio) || new Set(req.offsets).size !== req.offsets.length) return reply({ errno: "EINVAL" });
        if (req.offsets.some((o) => c.lines[o]!.holder)) return reply({ errno: "EBUSY" });
        const r: Req = { handle: this.nextHandle++, client, chip: c, offsets: req.offsets, direction: req.direction, edge: req.edge, consumer: req.consumer };
        this.reqs.set(r.handle, r);
        client.reqs.add(r);
        req.offsets.forEach((o, i) => {
          const line = c.lines[o]!;
          line.holder = r;
          line.direction = req.direction;
          if (req.direction === "output") this.setLevel(line, req.values?.[i] ?? 0);
        });
        return reply({ handle: r.handle });
      }
      case "set": {
        const r = this.reqs.get(req.handle);
        if (!r || r.client !== client) return reply({ errno: "EINVAL" });
        if (!r.chip.present) return reply({ errno: "ENODEV" });
        if (r.direction !== "output") return reply({ errno: "EPERM" });
        for (const [o, v] of req.values) {
          if (!r.offsets.includes(o)) return reply({ errno: "EINVAL" });
          this.setLevel(r.chip.lines[o]!, v);
        }
        return reply({});
      }
      case "bye":
        for (const r of [...client.reqs]) this.release(r);
        return reply({});
      case "get": {
        const r = this.reqs.get(req.handle);
        if (!r || r.client !== client) return reply({ errno: "EINVAL" });
        if (!r.chip.present) return reply({ errno: "ENODEV" });
        return reply({ values: r.offsets.map((o) => [o, r.chip.lines[o]!.level]) });
      }
    }
  }

  /** A request drives the line: recorded when the level changes or was not driven before. */
  private setLevel(line: LineState, level: Level): void {
    if (line.level === level && line.history.at(-1)?.driven) return;
    line.level = level;
    line.history.push({ level, driven: true, at: Date.now() });
  }

  private release(r: Req): void {
    this.reqs.delete(r.handle);
    r.client.reqs.delete(r);
    for (const o of r.offsets) {
      const line = r.chip.lines[o]!;
      if (line.holder !== r) continue;
      line.holder = null;
      if (r.direction === "output" && this.opts.releasedOutputs !== "persist") {
        // an input again: nothing drives it; it floats to 0 in this model
        line.direction = "input";
        if (line.level !== 0) {
          line.level = 0;
          line.history.push({ level: 0, driven: false, at: Date.now() });
        }
      }
    }
  }
}
