// USB HID keyboard-wedge readers (badge, QR, barcode) read through node-hid's hidraw access, so
// their keystrokes are ours alone: the udev rule in hardware/udev/ inhibits the matching input
// device, so the Pi's console (a getty on tty1) does not also receive every badge number and Enter.
//
//   HID.devices() ─ match vid/pid or path ─▶ open ─ 'data' reports ─▶ BootKeyboardDecoder ─▶ line
//        ▲                                     │ 'error' (unplugged)
//        └──────── rescan with backoff ◀───────┘
import { EventEmitter } from "node:events";
import { z } from "zod";
import { Backoff } from "../../backoff.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, InputPart } from "../parts.js";
import type { DeviceHealth, InputEvents } from "../types.js";
import { Dedupe } from "./dedupe.js";
import { BootKeyboardDecoder } from "./keyboard.js";
import { emitLine, lineFields, type LineOptions } from "./lines.js";

export const HidReaderConfig = z
  .strictObject({
    type: z.literal("hid"),
    vendorId: z.int().min(0).max(0xffff).optional().describe("USB vendor id (lsusb: the part before the colon), as a number"),
    productId: z.int().min(0).max(0xffff).optional(),
    path: z.string().min(1).optional().describe("a hidraw path instead of vendor/product, e.g. /dev/hidraw0"),
    reportId: z.boolean().default(false).describe("reports start with a report ID byte"),
    lineTimeoutMs: z.int().min(50).max(10_000).default(500).describe("a partial read without Enter is dropped after this"),
    ...lineFields,
  })
  .refine((c) => c.path !== undefined || (c.vendorId !== undefined && c.productId !== undefined), { message: "give vendorId and productId, or path" });
export type HidReaderConfig = z.infer<typeof HidReaderConfig>;

/** The slice of node-hid this driver uses; production is node-hid itself, tests pass the emulator. */
export interface HidDevice {
  on(event: "data", fn: (report: Buffer) => void): unknown;
  on(event: "error", fn: (err: Error) => void): unknown;
  removeAllListeners(): unknown;
  close(): void;
}
export interface HidApi {
  devices(): { vendorId: number; productId: number; path?: string | undefined }[];
  open(path: string): HidDevice;
}

async function nodeHid(): Promise<HidApi> {
  const hid = await import("node-hid");
  return { devices: () => hid.devices(), open: (path) => new hid.HID(path) };
}

export class HidReader extends EventEmitter<InputEvents> implements InputPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  private api: HidApi | undefined;
  private device: HidDevice | undefined;
  private openPath: string | undefined;
  private readonly decoder: BootKeyboardDecoder;
  private readonly dedupe: Dedupe;
  private readonly backoff: Backoff;
  private retry: NodeJS.Timeout | undefined;
  private lineTimer: NodeJS.Timeout | undefined;
  private running = false;
  private problem = "not started";
  private everOpened = false;
  reads = 0;

  constructor(
    private readonly config: HidReaderConfig,
    private readonly deps: { log: Logger; terminal: string; hid?: HidApi; random?: () => number },
  ) {
    super();
    const id = config.path ?? `${hex4(config.vendorId!)}:${hex4(config.productId!)}`;
    this.name = `hid reader ${id}`;
    this.decoder = new BootKeyboardDecoder({ reportId: config.reportId });
    this.dedupe = new Dedupe(config.dedupeMs);
    this.backoff = new Backoff({ baseMs: 500, capMs: 10_000, random: deps.random });
  }

  health(): DeviceHealth {
    return { name: this.name, kind: "reader", health: this.device ? "ok" : this.everOpened ? "degraded" : "absent", detail: this.device ? `open ${this.openPath}` : this.problem };
  }

  async start(): Promise<void> {
    this.running = true;
    this.api = this.deps.hid ?? (await nodeHid());
    this.connect();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retry);
    clearTimeout(this.lineTimer);
    this.close();
  }

  private connect(): void {
    if (!this.running || !this.api) return;
    let path: string | undefined;
    try {
      const c = this.config;
      const found = this.api.devices().find((d) => (c.path ? d.path === c.path : d.vendorId === c.vendorId && d.productId === c.productId));
      path = found?.path;
      if (!path) throw new Error("not plugged in");
      const dev = this.api.open(path);
      dev.on("data", (r) => this.onReport(r));
      dev.on("error", (e) => this.lost(e.message));
      this.device = dev;
      this.openPath = path;
      this.backoff.reset();
      if (this.everOpened) this.availability.emit("recovered");
      this.everOpened = true;
      this.deps.log.info({ reader: this.name, path }, "reader open");
    } catch (e) {
      this.problem = `${(e as Error).message}${path ? ` (${path}: check the udev rule gives group access)` : ""}`;
      this.schedule();
    }
  }

  private lost(why: string): void {
    if (!this.device) return;
    this.deps.log.warn({ reader: this.name, why }, "reader gone; rescanning");
    this.close();
    this.problem = `unplugged: ${why}`;
    this.availability.emit("fault", this.problem);
    this.schedule();
  }

  private close(): void {
    const d = this.device;
    this.device = undefined;
    this.decoder.reset();
    if (!d) return;
    d.removeAllListeners();
    try {
      d.close();
    } catch {
      /* already gone */
    }
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), this.backoff.next());
    this.retry.unref();
  }

  private onReport(report: Buffer): void {
    clearTimeout(this.lineTimer);
    for (const line of this.decoder.feed(report)) this.line(line);
    if (this.decoder.pending) {
      this.lineTimer = setTimeout(() => this.decoder.reset(), this.config.lineTimeoutMs);
      this.lineTimer.unref();
    }
  }

  private line(text: string): void {
    this.reads++;
    emitLine(this, this.config as LineOptions, this.deps.terminal, text, this.dedupe, this.deps.log);
  }
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}
