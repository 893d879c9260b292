// Debounced door states from raw observations (an edge's level, a poll, a reconciliation read).
// Shared by the GPIO door inputs and the I2C expanders.
//
//   observe(ch, raw) ──differs from last raw──▶ (re)start debounce timer ──quiet for debounceMs──▶
//   commit last raw; if it differs from the stable state ──▶ onChange(ch, state)
//
// The first observation of a channel sets its state silently: power-up is not a door event.
import type { DoorState } from "../types.js";

type Known = Exclude<DoorState, "unknown">;

interface Channel {
  stable: Known | null;
  raw: Known | null;
  timer: NodeJS.Timeout | null;
}

export class DoorStates {
  private readonly channels = new Map<number, Channel>();
  private valid = false;

  constructor(
    channels: readonly number[],
    private readonly debounceMs: number,
    private readonly onChange: (channel: number, state: Known) => void,
  ) {
    for (const c of channels) this.channels.set(c, { stable: null, raw: null, timer: null });
  }

  /** The debounced state; "unknown" before the first read and while the inputs cannot be read. */
  read(channel: number): DoorState {
    const c = this.channels.get(channel);
    return this.valid && c?.stable ? c.stable : "unknown";
  }

  /** true when a change is waiting out its debounce time. */
  settling(channel: number): boolean {
    return this.channels.get(channel)?.timer != null;
  }

  /** A raw level, already turned into open/closed. */
  observe(channel: number, raw: Known): void {
    const c = this.channels.get(channel);
    if (!c) return;
    this.valid = true;
    if (c.stable === null) {
      c.stable = c.raw = raw;
      return;
    }
    if (raw === c.raw && c.timer) return; // same level again while settling: let the timer run
    c.raw = raw;
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    if (raw === c.stable) return;
    c.timer = setTimeout(() => {
      c.timer = null;
      if (c.raw === null || c.raw === c.stable) return;
      c.stable = c.raw;
      this.onChange(channel, c.stable);
    }, this.debounceMs);
  }

  /** The inputs cannot be read (board faulted): states read "unknown" until the next observation.
   *  The last known states are kept, so a door that changed meanwhile is reported once back. */
  invalidate(): void {
    this.valid = false;
    this.cancel();
  }

  cancel(): void {
    for (const c of this.channels.values()) {
      if (c.timer) clearTimeout(c.timer);
      c.timer = null;
      c.raw = c.stable;
    }
  }
}
