// Door switches on the Pi's own GPIO pins. Each input watches both edges; a change is reported
// once the level has been quiet for `debounceMs` (contacts bounce for a few ms). A reconciliation
// read every `reconcileMs` is the backstop for an edge the kernel or epoll missed.
//
// On the character device (chardev.ts) the levels come from one gpiomon per part, and a read is the
// level its last event left; a helper that dies faults the part (`availability`; doors read
// "unknown") until it is back, when every input is read again.
//
// sysfs cannot set pull-ups: enable them in config.txt (gpio=5,6,13=ip,pu) or fit resistors.
import { EventEmitter } from "node:events";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, DoorPart } from "../parts.js";
import type { DeviceHealth, DoorEvents, DoorState } from "../types.js";
import { describeError } from "./common.js";
import { DoorStates } from "./door-states.js";
import type { GpioLine, Level } from "./line.js";
import { DEFAULT_DEBOUNCE_MS, GpioDoorsConfig, debounceMsField, doorsActiveLowField } from "./config.js";
import type { GpioDeps } from "./relays.js";
import { GpioPins } from "./sysfs.js";

export { DEFAULT_DEBOUNCE_MS, GpioDoorsConfig, debounceMsField, doorsActiveLowField };

interface Door {
  pin: number;
  closedLevel: Level;
  line: GpioLine | null;
}

class GpioDoors extends EventEmitter<DoorEvents> implements DoorPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  readonly channels: readonly number[];
  private readonly doors = new Map<number, Door>();
  private readonly states: DoorStates;
  private readonly log: Logger;
  private pins: GpioPins | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  /** Channels whose last reconciliation read failed (logged once until they read again). */
  private readonly failing = new Set<number>();
  /** A chardev helper is down: nothing to read until it is back (its fault is reported once). */
  private helperDown = false;
  private state: DeviceHealth["health"] = "absent";
  private detail = "not started";

  constructor(
    private readonly config: GpioDoorsConfig,
    private readonly deps: GpioDeps,
  ) {
    super();
    this.name = `gpio doors (GPIO ${config.doors.map((d) => d.pin).join(",")})`;
    this.channels = config.doors.map((d) => d.channel);
    for (const d of config.doors) this.doors.set(d.channel, { pin: d.pin, closedLevel: (d.activeLow ?? config.activeLow) ? 0 : 1, line: null });
    this.log = deps.log.child({ module: "gpio-doors" });
    this.states = new DoorStates(this.channels, config.debounceMs, (channel, state) => {
      this.log.debug({ channel, state }, "door");
      this.emit("change", channel, state);
    });
  }

  read(channel: number): DoorState {
    return this.states.read(channel);
  }

  health(): DeviceHealth {
    return { name: this.name, kind: "doors", health: this.state, detail: this.detail };
  }

  async start(): Promise<void> {
    const pins = await GpioPins.attach(this.config, this.deps.gpio, { gpiod: this.deps.gpiod, log: this.log });
    const doors = [...this.doors];
    try {
      const lines = await pins.lines(doors.map(([, d]) => ({ pin: d.pin, direction: "in" as const, edge: "both" as const })));
      doors.forEach(([channel, d], i) => {
        const line = lines[i]!;
        d.line = line;
        line.watch((err, level) => {
          if (err) this.log.warn({ channel, err }, "door edge error");
          else this.states.observe(channel, this.toState(d, level));
        });
      });
    } catch (e) {
      await pins.release();
      for (const d of this.doors.values()) d.line = null;
      throw e;
    }
    pins.on("fault", (detail) => {
      this.helperDown = true;
      this.state = "faulted";
      this.detail = detail;
      this.states.invalidate();
      this.availability.emit("fault", detail);
    });
    pins.on("recovered", () => {
      this.helperDown = false;
      this.state = "ok";
      this.detail = `${this.doors.size} inputs on ${pins.describe()}`;
      this.availability.emit("recovered");
      void this.reconcile();
    });
    this.pins = pins;
    this.state = "ok";
    this.detail = `${this.doors.size} inputs on ${pins.describe()}`;
    await this.reconcile();
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.config.reconcileMs);
  }

  async stop(): Promise<void> {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.reconcileTimer = null;
    this.states.cancel();
    this.helperDown = false;
    const pins = this.pins;
    this.pins = null;
    pins?.removeAllListeners();
    await pins?.release();
    for (const d of this.doors.values()) d.line = null;
    this.state = "absent";
    this.detail = "stopped";
  }

  /** Read every input; a level that differs from the debounced state with no edge pending was missed. */
  private async reconcile(): Promise<void> {
    if (this.helperDown) return;
    let failed = false;
    for (const [channel, d] of this.doors) {
      if (!d.line) return;
      let level: Level;
      try {
        level = await d.line.read();
      } catch (e) {
        this.state = "faulted";
        this.detail = `GPIO ${d.pin}: ${describeError(e)}`;
        // On change: a read failing every reconcileMs is one error, not one a second.
        if (!this.failing.has(channel)) this.log.error({ channel, pin: d.pin, err: e }, "door input read failed; reads again every reconciliation");
        this.failing.add(channel);
        failed = true;
        continue;
      }
      if (this.failing.delete(channel)) this.log.info({ channel, pin: d.pin }, "door input reads again");
      const state = this.toState(d, level);
      const known = this.states.read(channel);
      if (known !== "unknown" && known !== state && !this.states.settling(channel)) {
        this.log.warn({ channel, pin: d.pin, state }, "door edge missed, corrected by reconciliation read");
      }
      this.states.observe(channel, state);
    }
    if (!failed && this.state === "faulted" && this.pins) {
      this.state = "ok";
      this.detail = `${this.doors.size} inputs on ${this.pins.describe()}`;
    }
  }

  private toState(d: Door, level: Level): "open" | "closed" {
    return level === d.closedLevel ? "closed" : "open";
  }
}

export function createGpioDoors(config: GpioDoorsConfig, deps: GpioDeps): DoorPart {
  return new GpioDoors(config, deps);
}
