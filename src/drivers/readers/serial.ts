// Readers on a serial line (a UART on the header, or a USB-serial converter): keypads that send
// one ASCII character per key, scanners that send lines, RDM6300 125 kHz modules, and Wiegand
// readers behind a Wiegand-to-serial converter. The port reopens with backoff when it vanishes.
//
//   SerialPort ─ bytes ─┬─ serial-keypad:  decodeKeypadBytes ───────────▶ keys
//                       ├─ rdm6300:        Rdm6300Parser (frames) ──────▶ badge
//                       └─ ReadlineParser (lines) ─┬─ serial-scanner ───▶ scan / badge
//                                                  └─ wiegand-serial: wiegandLineId ─▶ badge
import { EventEmitter } from "node:events";
import type { SerialPort } from "serialport";
import { Backoff } from "../../backoff.js";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, InputPart } from "../parts.js";
import type { DeviceHealth, InputEvents } from "../types.js";
import { ReaderOutput } from "./output.js";
import { Rdm6300Config, SerialKeypadConfig, SerialScannerConfig, WiegandSerialConfig, type SerialReaderConfig } from "./config.js";
import { Rdm6300Parser } from "./rdm6300.js";
import { wiegandLineId } from "./wiegand.js";

export { Rdm6300Config, SerialKeypadConfig, SerialScannerConfig, WiegandSerialConfig, type SerialReaderConfig };

/** A keypad's bytes: 0-9 * # are keys; CR/LF some keypads add are nothing; anything else is noise. */
export function decodeKeypadBytes(chunk: Uint8Array): { keys: string; noise: number } {
  let keys = "";
  let noise = 0;
  for (const c of Buffer.from(chunk).toString("latin1")) {
    if (/[0-9*#]/.test(c)) keys += c;
    else if (c !== "\r" && c !== "\n") noise++;
  }
  return { keys, noise };
}

type SerialModule = typeof import("../serial-binding.js");
type ReadlineModule = typeof import("@serialport/parser-readline");

async function serialModules(): Promise<[SerialModule, ReadlineModule]> {
  try {
    return await Promise.all([import("../serial-binding.js"), import("@serialport/parser-readline")]);
  } catch (e) {
    throw new LockerError(ErrorCode.HardwareUnavailable, `serialport cannot load (${(e as Error).message}): reinstall lockerd on this machine (npm ci builds it)`);
  }
}

export interface SerialReaderDeps {
  log: Logger;
  /** Terminal for a config without one. */
  terminal: string;
  random?: () => number;
  now?: () => number;
}

export class SerialReader extends EventEmitter<InputEvents> implements InputPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  readonly output: ReaderOutput;
  private modules: [SerialModule, ReadlineModule] | undefined;
  private port: SerialPort | undefined;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private readonly rdm = new Rdm6300Parser();
  private retry: NodeJS.Timeout | undefined;
  private running = false;
  private problem = "not started";
  private everOpened = false;

  constructor(
    private readonly config: SerialReaderConfig,
    deps: SerialReaderDeps,
  ) {
    super();
    this.name = `${config.type} ${config.port}`;
    this.log = deps.log.child({ module: "reader", reader: this.name });
    this.output = new ReaderOutput(this, config.terminal ?? deps.terminal, config.dedupeMs, this.log, deps.now);
    this.backoff = new Backoff({ baseMs: Math.min(500, config.retryMaxMs), capMs: config.retryMaxMs, random: deps.random });
  }

  health(): DeviceHealth {
    const health = this.port ? "ok" : this.everOpened ? "degraded" : "absent";
    return { name: this.name, kind: "reader", health, detail: `${this.port ? "open" : this.problem}; ${this.output.summary()}` };
  }

  async start(): Promise<void> {
    this.modules ??= await serialModules();
    this.running = true;
    this.open();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retry);
    const p = this.port;
    this.port = undefined;
    if (p?.isOpen) await new Promise<void>((resolve) => p.close(() => resolve()));
  }

  private open(): void {
    if (!this.running || !this.modules) return;
    const [{ newSerialPort }] = this.modules;
    const port = newSerialPort({ path: this.config.port, baudRate: this.config.baudRate, autoOpen: false });
    port.on("error", (e) => this.lost(port, e.message));
    port.on("close", (e?: Error) => this.lost(port, e?.message ?? "closed"));
    port.open((err) => {
      if (err) {
        this.problem = `cannot open: ${err.message}`;
        return this.schedule();
      }
      if (!this.running) return void port.close();
      this.port = port;
      this.rdm.reset();
      this.backoff.reset();
      if (this.everOpened) this.availability.emit("recovered");
      this.everOpened = true;
      this.log.info("reader port open");
      this.wire(port);
    });
  }

  /** The port closed or failed under us (unplugged): reopen with backoff. */
  private lost(port: SerialPort, why: string): void {
    if (this.port !== port) return;
    this.port = undefined;
    this.problem = `port lost (${why}); reopening`;
    this.log.warn({ why }, "reader port lost; reopening");
    this.availability.emit("fault", this.problem);
    if (port.isOpen) port.close(() => undefined);
    this.schedule();
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.open(), this.backoff.next());
    this.retry.unref();
  }

  private wire(port: SerialPort): void {
    const c = this.config;
    const out = this.output;
    switch (c.type) {
      case "serial-keypad":
        port.on("data", (chunk: Buffer) => {
          const { keys, noise } = decodeKeypadBytes(chunk);
          if (noise) out.discard("noise", noise);
          out.keys(keys);
        });
        return;
      case "rdm6300":
        port.on("data", (chunk: Buffer) => {
          for (const item of this.rdm.push(chunk)) {
            if (item.kind === "discarded") out.discard(item.reason);
            else out.badge(c.idDigits === 10 ? item.full : item.card);
          }
        });
        return;
      case "serial-scanner":
        return this.lines(port, c.lineEnd, (line) => (c.emits === "scan" ? out.scan(line) : out.badge(line, c.badgeIds)));
      case "wiegand-serial":
        return this.lines(port, c.lineEnd, (line) => {
          const r = wiegandLineId(line, c.format);
          if ("id" in r) out.badge(r.id);
          else out.discard(r.reason);
        });
    }
  }

  private lines(port: SerialPort, end: "CR" | "LF", fn: (line: string) => void): void {
    const [, { ReadlineParser }] = this.modules!;
    const parser = port.pipe(new ReadlineParser({ delimiter: end === "CR" ? "\r" : "\n", encoding: "latin1" }));
    parser.on("data", (line: string) => {
      const t = line.replace(/[\r\n]/g, "").trim();
      if (t) fn(t);
    });
  }
}
