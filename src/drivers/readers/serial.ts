// Readers on a serial line (a UART on the header, or a USB-serial converter): keypads that send
// one ASCII character per key, scanners that send lines, RDM6300 125 kHz modules, and Wiegand
// readers behind a Wiegand-to-serial converter. The port reopens with backoff when it vanishes.
//
//   SerialPort ─ bytes ─▶ decoder (keys · ReadlineParser lines · Rdm6300Parser frames) ─▶ input
import { EventEmitter } from "node:events";
import { ReadlineParser } from "@serialport/parser-readline";
import { SerialPort } from "serialport";
import { z } from "zod";
import { Backoff } from "../../backoff.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, InputPart } from "../parts.js";
import type { DeviceHealth, InputEvents } from "../types.js";
import { Dedupe } from "./dedupe.js";
import { emitLine, lineFields, type LineOptions } from "./lines.js";
import { Rdm6300Parser } from "./rdm6300.js";
import { decodeWiegand } from "./wiegand.js";

const serialFields = {
  port: z.string().min(1).max(4096).describe("e.g. /dev/ttyAMA0, /dev/serial/by-id/..."),
  terminal: lineFields.terminal,
};
/** What ends a line; CRLF works with either (the other character is trimmed). */
const lineEnd = z.enum(["CR", "LF"]).default("CR").describe("the scanner's line suffix");

export const SerialKeypadConfig = z.strictObject({
  type: z.literal("serial-keypad"),
  ...serialFields,
  baudRate: z.int().min(300).max(921_600).default(9600),
});
export const SerialScannerConfig = z.strictObject({
  type: z.literal("serial-scanner"),
  ...serialFields,
  baudRate: z.int().min(300).max(921_600).default(9600),
  emits: lineFields.emits.default("scan"),
  lineEnd,
  format: lineFields.format,
  dedupeMs: lineFields.dedupeMs,
});
export const Rdm6300Config = z.strictObject({
  type: z.literal("rdm6300"),
  ...serialFields,
  baudRate: z.int().min(300).max(921_600).default(9600),
  dedupeMs: lineFields.dedupeMs,
  idDigits: z.union([z.literal(8), z.literal(10)]).default(8).describe("badge id: the 8-digit card id, or all 10 (version + card)"),
});
export const WiegandSerialConfig = z.strictObject({
  type: z.literal("wiegand-serial"),
  ...serialFields,
  baudRate: z.int().min(300).max(921_600).default(9600),
  lineEnd,
  wiegand: z.enum(["bits", "decimal", "hex"]).default("bits").describe("what the converter sends per card: raw bits (parity checked), or the number"),
  dedupeMs: lineFields.dedupeMs,
});
export type SerialReaderConfig =
  | z.infer<typeof SerialKeypadConfig>
  | z.infer<typeof SerialScannerConfig>
  | z.infer<typeof Rdm6300Config>
  | z.infer<typeof WiegandSerialConfig>;

export class SerialReader extends EventEmitter<InputEvents> implements InputPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  private port: SerialPort | undefined;
  private readonly backoff: Backoff;
  private readonly dedupe: Dedupe;
  private retry: NodeJS.Timeout | undefined;
  private running = false;
  private problem = "not started";
  private everOpened = false;
  private rdm = new Rdm6300Parser();
  /** Lines or frames refused (bad checksum, bad parity, not a card). */
  rejected = 0;

  constructor(
    private readonly config: SerialReaderConfig,
    private readonly deps: { log: Logger; terminal: string; random?: () => number },
  ) {
    super();
    this.name = `${config.type} ${config.port}`;
    this.backoff = new Backoff({ baseMs: 500, capMs: 10_000, random: deps.random });
    this.dedupe = new Dedupe("dedupeMs" in config ? config.dedupeMs : 0);
  }

  get discarded(): number {
    return this.rdm.discarded;
  }

  health(): DeviceHealth {
    const open = this.port?.isOpen === true;
    return { name: this.name, kind: "reader", health: open ? "ok" : this.everOpened ? "degraded" : "absent", detail: open ? "open" : this.problem };
  }

  async start(): Promise<void> {
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
    if (!this.running) return;
    const port = new SerialPort({ path: this.config.port, baudRate: this.config.baudRate, autoOpen: false });
    port.open((err) => {
      if (err) {
        this.problem = `cannot open: ${err.message}`;
        return this.schedule();
      }
      if (!this.running) return void port.close();
      this.port = port;
      this.rdm = new Rdm6300Parser();
      this.backoff.reset();
      if (this.everOpened) this.availability.emit("recovered");
      this.everOpened = true;
      this.wire(port);
    });
    port.on("error", (e) => (this.problem = e.message));
    port.on("close", () => {
      if (this.port !== port) return;
      this.port = undefined;
      this.problem = "port closed (unplugged?)";
      this.deps.log.warn({ reader: this.name }, "reader port closed; reopening");
      this.availability.emit("fault", this.problem);
      this.schedule();
    });
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.open(), this.backoff.next());
    this.retry.unref();
  }

  private wire(port: SerialPort): void {
    const c = this.config;
    const terminal = c.terminal ?? this.deps.terminal;
    switch (c.type) {
      case "serial-keypad":
        port.on("data", (chunk: Buffer) => {
          const keys = chunk.toString("latin1").replace(/[^0-9*#]/g, "");
          if (keys) this.emit("input", { kind: "keys", terminal, keys });
        });
        return;
      case "rdm6300":
        port.on("data", (chunk: Buffer) => {
          const before = this.rdm.badChecksums;
          for (const r of this.rdm.push(chunk)) this.badge(c.idDigits === 10 ? r.full : r.card, terminal);
          this.rejected += this.rdm.badChecksums - before;
        });
        return;
      case "serial-scanner": {
        const lines = port.pipe(new ReadlineParser({ delimiter: c.lineEnd === "CR" ? "\r" : "\n" }));
        lines.on("data", (line: string) => {
          if (line.trim()) emitLine(this, { ...c, terminal } as LineOptions, terminal, line, this.dedupe, this.deps.log);
        });
        return;
      }
      case "wiegand-serial": {
        const lines = port.pipe(new ReadlineParser({ delimiter: c.lineEnd === "CR" ? "\r" : "\n" }));
        lines.on("data", (line: string) => this.wiegandLine(line.trim(), terminal));
        return;
      }
    }
  }

  private wiegandLine(line: string, terminal: string): void {
    if (!line || this.config.type !== "wiegand-serial") return;
    let id: string | undefined;
    try {
      if (this.config.wiegand === "bits") id = decodeWiegand(line).id;
      else if (this.config.wiegand === "hex" && /^[0-9A-Fa-f]{1,16}$/.test(line)) id = line.toUpperCase().padStart(6, "0");
      else if (this.config.wiegand === "decimal" && /^[0-9]{1,19}$/.test(line)) id = BigInt(line).toString(16).toUpperCase().padStart(6, "0");
    } catch (e) {
      this.deps.log.warn({ reader: this.name, reason: (e as Error).message }, "wiegand read refused");
    }
    if (!id) {
      this.rejected++;
      return;
    }
    this.badge(id, terminal);
  }

  private badge(id: string, terminal: string): void {
    if (!this.dedupe.accept(id)) return;
    this.emit("input", { kind: "badge", terminal, id });
  }
}
