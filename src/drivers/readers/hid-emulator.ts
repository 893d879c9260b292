// A USB bus with keyboard-wedge readers on it, behind the same slice of node-hid the HID driver
// uses (HidApi): devices() lists what is plugged in, open(path) gives a device that emits raw
// boot-keyboard reports as Buffers, and 'error' when pulled out (as node-hid does when the hidraw
// read fails). Tests and demos plug, type and unplug; the driver under test is the real one.
// One instance per test: no module-level state.
import { EventEmitter } from "node:events";
import type { HidApi, HidDevice, HidDeviceInfo } from "./hid.js";
import { typeReports } from "./keyboard.js";

class EmulatedHidDevice extends EventEmitter implements HidDevice {
  closed = false;
  close(): void {
    this.closed = true;
    this.removeAllListeners(); // as node-hid's HID.close() does
  }
}

export interface EmulatedReader extends HidDeviceInfo {
  path: string;
}

export class HidBusEmulator implements HidApi {
  private readonly plugged = new Map<string, EmulatedReader>();
  private readonly handles = new Map<string, EmulatedHidDevice>();
  /** Successful open() calls, for tests of the rescan. */
  opens = 0;

  plug(r: EmulatedReader): void {
    this.plugged.set(r.path, { ...r });
  }

  /** Pulled out: the open handle errors (as hidraw's read does with ENODEV), the device leaves the list. */
  unplug(path: string): void {
    this.plugged.delete(path);
    const d = this.handles.get(path);
    this.handles.delete(path);
    if (d && !d.closed) d.emit("error", new Error("could not read from HID device"));
  }

  devices(): HidDeviceInfo[] {
    return [...this.plugged.values()].map((r) => ({ ...r }));
  }

  open(path: string): HidDevice {
    if (!this.plugged.has(path)) throw new Error(`cannot open device with path ${path}`);
    const d = new EmulatedHidDevice();
    this.handles.set(path, d);
    this.opens++;
    return d;
  }

  /** Raw reports from the reader at `path`, as it sends them. */
  send(path: string, reports: readonly Uint8Array[]): void {
    const d = this.handles.get(path);
    if (!d || d.closed) throw new Error(`${path} is not open`);
    for (const r of reports) d.emit("data", Buffer.from(r));
  }

  /** The reader reads `text` and types it, then Enter. */
  type(path: string, text: string, reportId?: number): void {
    this.send(path, typeReports(text, reportId));
  }

  isOpen(path: string): boolean {
    const d = this.handles.get(path);
    return !!d && !d.closed;
  }
}
