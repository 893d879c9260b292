// A USB bus with keyboard-wedge readers on it, behind the same slice of node-hid the HID driver
// uses (HidApi): devices() lists what is plugged in, open(path) gives a device that emits raw boot-
// keyboard reports. Tests and demos plug, type and unplug; the driver under test is the real one.
import { EventEmitter } from "node:events";
import type { HidApi, HidDevice } from "./hid.js";
import { typeReports } from "./keyboard.js";

class EmulatedHidDevice extends EventEmitter implements HidDevice {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

export interface EmulatedReader {
  vendorId: number;
  productId: number;
  path: string;
}

export class HidBusEmulator implements HidApi {
  private readonly plugged = new Map<string, EmulatedReader>();
  private readonly open_ = new Map<string, EmulatedHidDevice>();
  opens = 0;

  plug(r: EmulatedReader): void {
    this.plugged.set(r.path, r);
  }

  /** Pulled out: the open handle errors (as hidraw does with ENODEV), the device leaves the list. */
  unplug(path: string): void {
    this.plugged.delete(path);
    const d = this.open_.get(path);
    this.open_.delete(path);
    d?.emit("error", new Error("could not read from HID device"));
  }

  devices(): { vendorId: number; productId: number; path: string }[] {
    return [...this.plugged.values()].map((r) => ({ ...r }));
  }

  open(path: string): HidDevice {
    if (!this.plugged.has(path)) throw new Error(`cannot open device with path ${path}`);
    const d = new EmulatedHidDevice();
    this.open_.set(path, d);
    this.opens++;
    return d;
  }

  /** Raw reports from the reader at `path`. */
  send(path: string, reports: readonly Buffer[]): void {
    const d = this.open_.get(path);
    if (!d || d.closed) throw new Error(`${path} is not open`);
    for (const r of reports) d.emit("data", r);
  }

  /** The reader reads `text` and sends it as keystrokes ending in Enter. */
  type(path: string, text: string): void {
    this.send(path, typeReports(text));
  }

  isOpen(path: string): boolean {
    const d = this.open_.get(path);
    return !!d && !d.closed;
  }
}
