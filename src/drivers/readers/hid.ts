// USB HID keyboard-wedge readers (badge, QR, barcode) read through node-hid's hidraw access, so
// their keystrokes are ours alone: the udev rule in hardware/udev/ inhibits the matching input
// device, so the Pi's console (a getty on tty1) does not also receive every badge number and Enter.
//
//   HID.devices() ─ match vid/pid ─▶ open(path) ─ 'data' reports ─▶ BootKeyboardDecoder ─▶ line ─▶ input
//        ▲        (or open `path`)       │ 'error' / 'close' (unplugged)
//        └────── rescan with backoff ◀───┘
import { EventEmitter } from "node:events";
import { Backoff } from "../../backoff.js";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, InputPart } from "../parts.js";
import type { DeviceHealth, InputEvents } from "../types.js";
import { BootKeyboardDecoder } from "./keyboard.js";
import { ReaderOutput } from "./output.js";
import { HidReaderConfig } from "./config.js";

export { HidReaderConfig };

/** What HID.devices() tells about one device (the fields this driver looks at). */
export interface HidDeviceInfo {
  vendorId: number;
  productId: number;
  path?: string | undefined;
  usagePage?: number | undefined;
  usage?: number | undefined;
}

/** An open device: node-hid's HID, or the emulator's. */
export interface HidDevice {
  on(event: "data", fn: (report: Buffer) => void): unknown;
  on(event: "error", fn: (err: Error) => void): unknown;
  on(event: "close", fn: () => void): unknown;
  removeAllListeners(): unknown;
  close(): void;
}

/** The slice of node-hid this driver uses; production is node-hid itself, tests pass the emulator. */
export interface HidApi {
  devices(): HidDeviceInfo[];
  open(path: string): HidDevice;
}

async function nodeHid(): Promise<HidApi> {
  try {
    const hid = await import("node-hid");
    return { devices: () => hid.devices(), open: (path) => new hid.HID(path) };
  } catch (e) {
    throw new LockerError(ErrorCode.HardwareUnavailable, `node-hid cannot load (${(e as Error).message}): reinstall lockerd on this machine (npm ci builds it)`);
  }
}

/** Keyboard usage (Generic Desktop page 1, usage 6): the interface of a composite reader that types. */
const isKeyboard = (d: HidDeviceInfo) => d.usagePage === 1 && d.usage === 6;

export interface HidReaderDeps {
  log: Logger;
  /** Terminal for a config without one. */
  terminal: string;
  hid?: HidApi;
  random?: () => number;
  now?: () => number;
}

export class HidReader extends EventEmitter<InputEvents> implements InputPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  readonly output: ReaderOutput;
  private api: HidApi | undefined;
  private device: HidDevice | undefined;
  private openPath: string | undefined;
  private readonly decoder: BootKeyboardDecoder;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private retry: NodeJS.Timeout | undefined;
  private lineTimer: NodeJS.Timeout | undefined;
  private running = false;
  private problem = "not started";
  private everOpened = false;

  constructor(
    private readonly config: HidReaderConfig,
    private readonly deps: HidReaderDeps,
  ) {
    super();
    this.name = `hid reader ${config.path ?? `${hex4(config.vendorId!)}:${hex4(config.productId!)}`}`;
    this.log = deps.log.child({ module: "reader", reader: this.name });
    this.decoder = new BootKeyboardDecoder({ reportId: config.reportId });
    this.output = new ReaderOutput(this, config.terminal ?? deps.terminal, config.dedupeMs, this.log, deps.now);
    this.backoff = new Backoff({ baseMs: Math.min(500, config.retryMaxMs), capMs: config.retryMaxMs, random: deps.random });
  }

  health(): DeviceHealth {
    const health = this.device ? "ok" : this.everOpened ? "degraded" : "absent";
    return { name: this.name, kind: "reader", health, detail: `${this.device ? `open ${this.openPath}` : this.problem}; ${this.output.summary()}` };
  }

  async start(): Promise<void> {
    this.api = this.deps.hid ?? (await nodeHid());
    this.running = true;
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
      path = this.config.path ?? this.find(this.api.devices());
      if (!path) throw new Error("not plugged in");
      const dev = this.api.open(path);
      dev.on("data", (r) => this.onReport(r));
      dev.on("error", (e) => this.lost(dev, e.message));
      dev.on("close", () => this.lost(dev, "closed"));
      this.device = dev;
      this.openPath = path;
      this.backoff.reset();
      if (this.everOpened) this.availability.emit("recovered");
      this.everOpened = true;
      this.log.info({ path }, "reader open");
    } catch (e) {
      const hint = path && /permission|denied|EACCES/i.test((e as Error).message) ? " (does the udev rule give group lockerd access?)" : "";
      this.problem = `${path ? `${path}: ` : ""}${(e as Error).message}${hint}`;
      this.schedule();
    }
  }

  /** The reader's hidraw path: vendor/product match, the keyboard interface first if it says. */
  private find(list: HidDeviceInfo[]): string | undefined {
    const mine = list.filter((d) => d.path && d.vendorId === this.config.vendorId && d.productId === this.config.productId);
    return (mine.find(isKeyboard) ?? mine[0])?.path;
  }

  private lost(dev: HidDevice, why: string): void {
    if (this.device !== dev) return;
    this.log.warn({ why }, "reader gone; rescanning");
    this.close();
    this.problem = `unplugged: ${why}`;
    this.availability.emit("fault", this.problem);
    this.schedule();
  }

  private close(): void {
    const d = this.device;
    this.device = undefined;
    clearTimeout(this.lineTimer);
    if (this.decoder.pending) this.output.discard("partial line");
    this.decoder.reset();
    if (!d) return;
    d.removeAllListeners();
    d.on("error", () => undefined); // a late read error from the closing handle is not news
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
    const d = this.decoder;
    const before = { keystrokes: d.keystrokes, malformed: d.malformed, overlong: d.overlong };
    for (const line of d.feed(report)) {
      if (this.config.emits === "scan") this.output.scan(line);
      else this.output.badge(line, this.config.badgeIds);
    }
    if (d.malformed > before.malformed) this.output.discard("malformed report");
    if (d.overlong > before.overlong) this.output.discard("line too long");
    if (d.keystrokes === before.keystrokes) return;
    // A key arrived: the partial line has lineTimeoutMs from now to end in Enter.
    clearTimeout(this.lineTimer);
    if (!d.pending) return;
    this.lineTimer = setTimeout(() => {
      this.output.discard("partial line");
      d.dropLine();
    }, this.config.lineTimeoutMs);
    this.lineTimer.unref();
  }
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}
