// A relay/door board on an I2C port expander, whatever the chip: the chip module (mcp23017.ts,
// pcf8574.ts, pca9534.ts) only says how to configure it, write the outputs and read the inputs.
//
//   ExpanderBoard ── I2cLink (retries, fault, probe) ── chip ops ── I2cBus
//     .locks  LockPart  pulse: output bit on, wait, off (one write of the whole port each time)
//     .doors  DoorPart  poll every pollMs, or on the chip's INT line + a slow reconciliation poll
//
// The board emits "fault" / "recovered" (DeviceEvents). Starting or stopping either sub-part
// starts or stops the board; both are idempotent.
import { EventEmitter } from "node:events";
import { z } from "zod";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { PerKeyQueue, Sleeper } from "../gpio/common.js";
import { DoorStates } from "../gpio/door-states.js";
import type { GpioLineOpener } from "../gpio/line.js";
import { GpioPins } from "../gpio/sysfs.js";
import type { DoorPart, LockPart, Part } from "../parts.js";
import type { DeviceHealth, DoorEvents, DoorState } from "../types.js";
import { deviceName, openI2cBus, type I2cBus, type I2cBusOpener } from "./bus.js";
import { I2cLink, type DeviceEvents } from "./link.js";
import { InterruptConfig, doorInputFields, i2cDeviceFields } from "./config.js";

export { InterruptConfig, doorInputFields, i2cDeviceFields };

export interface I2cDeps {
  log: Logger;
  /** Default: i2c-bus openPromisified. Tests pass an emulator bus. */
  openBus?: I2cBusOpener;
  /** The INT line's opener; default onoff. */
  gpio?: GpioLineOpener;
  /** Backoff jitter source (tests pass a fixed one). */
  random?: () => number;
}

/** How one chip is driven. Bits are 0..7 (port A / the only port) and 8..15 (MCP23017 port B). */
export interface ExpanderChip {
  /** Configure from scratch (directions, pull-ups, interrupt) with `outputs` on the output bits. */
  init(bus: I2cBus, outputs: number): Promise<void>;
  writeOutputs(bus: I2cBus, outputs: number): Promise<void>;
  readInputs(bus: I2cBus): Promise<number>;
}

export interface BitChannel {
  channel: number;
  bit: number;
}

export interface ExpanderBoardOptions {
  kind: string;
  address: number;
  config: { bus: number; retries: number; debounceMs?: number; pollMs?: number; interrupt?: z.infer<typeof InterruptConfig> | undefined };
  relays: { bits: readonly BitChannel[]; activeLow: boolean };
  doors: { bits: readonly BitChannel[]; activeLow: boolean };
  chip: ExpanderChip;
}

export class ExpanderBoard extends EventEmitter<DeviceEvents> implements Part {
  readonly name: string;
  readonly locks: LockPart | null;
  readonly doors: DoorPart | null;
  private readonly link: I2cLink;
  private readonly log: Logger;
  private readonly relayBit = new Map<number, number>();
  private readonly relayMask: number;
  private readonly doorStates: DoorStates;
  private readonly doorEvents = new EventEmitter<DoorEvents>();
  private readonly sleeper = new Sleeper();
  private readonly pulses = new PerKeyQueue<number>();
  /** Relay bits currently energized (logical, before active-low). */
  private energized = 0;
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  private running = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private interruptPins: GpioPins | null = null;

  constructor(
    private readonly opts: ExpanderBoardOptions,
    private readonly deps: I2cDeps,
  ) {
    super();
    this.name = deviceName(opts.kind, opts.config.bus, opts.address);
    this.log = deps.log.child({ module: opts.kind, device: this.name });
    let mask = 0;
    for (const r of opts.relays.bits) {
      this.relayBit.set(r.channel, r.bit);
      mask |= 1 << r.bit;
    }
    this.relayMask = mask;
    const doorChannels = opts.doors.bits.map((d) => d.channel);
    this.doorStates = new DoorStates(doorChannels, opts.config.debounceMs ?? 30, (channel, state) => this.doorEvents.emit("change", channel, state));
    this.link = new I2cLink({
      name: this.name,
      busNumber: opts.config.bus,
      retries: opts.config.retries,
      log: this.log,
      openBus: deps.openBus ?? openI2cBus,
      random: deps.random,
      init: (bus) => opts.chip.init(bus, this.outputs()),
      onRecovered: () => void this.readInputs(),
    });
    this.link.on("fault", (detail) => {
      this.energized = 0;
      this.doorStates.invalidate();
      this.emit("fault", detail);
    });
    this.link.on("recovered", () => this.emit("recovered"));
    this.locks = opts.relays.bits.length ? new ExpanderLocks(this, opts.relays.bits.map((r) => r.channel)) : null;
    this.doors = doorChannels.length ? new ExpanderDoors(this, doorChannels, this.doorEvents) : null;
  }

  health(kind?: DeviceHealth["kind"]): DeviceHealth {
    const health = this.link.state === "ok" ? "ok" : this.link.state === "faulted" ? "faulted" : "absent";
    return { name: this.name, kind: kind ?? (this.locks ? "locks" : "doors"), health, detail: this.link.detail };
  }

  start(): Promise<void> {
    this.starting ??= this.open();
    return this.starting;
  }

  stop(): Promise<void> {
    if (!this.starting) return Promise.resolve();
    this.stopping ??= this.close();
    return this.stopping;
  }

  private async open(): Promise<void> {
    this.stopping = null;
    await this.link.start();
    this.running = true;
    const irq = this.opts.config.interrupt;
    if (irq && this.doors) {
      try {
        const pins = await GpioPins.attach(irq, this.deps.gpio, { log: this.log });
        this.interruptPins = pins;
        const line = await pins.line(irq.pin, "in", "falling");
        line.watch(() => void this.readInputs());
      } catch (e) {
        await this.close();
        throw e;
      }
    }
    if (this.doors) {
      await this.readInputs();
      this.schedulePoll();
    }
    this.log.info({ state: this.link.state }, "expander board started, relays off");
  }

  private async close(): Promise<void> {
    this.running = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    this.interruptPins?.releaseAll();
    this.interruptPins = null;
    await this.allOff();
    this.sleeper.wakeAll();
    await this.link.stop();
    this.doorStates.cancel();
    this.starting = null;
  }

  // ── relays ──────────────────────────────────────────────────────────────

  /** The output bits as written to the chip: relays off or on, honouring active-low. */
  private outputs(): number {
    const level = this.opts.relays.activeLow ? ~this.energized : this.energized;
    return level & this.relayMask;
  }

  pulse(channel: number, ms: number): Promise<void> {
    const bit = this.relayBit.get(channel);
    if (bit === undefined) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `no relay for lock channel ${channel} on ${this.name}`, { channel }));
    return this.pulses.run(channel, async () => {
      this.energized |= 1 << bit;
      try {
        await this.link.run("relay on", (bus) => this.opts.chip.writeOutputs(bus, this.outputs()));
      } catch (e) {
        this.energized &= ~(1 << bit);
        throw e;
      }
      try {
        await this.sleeper.sleep(ms);
      } finally {
        this.energized &= ~(1 << bit);
        if (this.running) await this.writeOff();
      }
    });
  }

  /** Release one relay; when the board stopped answering, one last best-effort write. */
  private async writeOff(): Promise<void> {
    try {
      await this.link.run("relay off", (bus) => this.opts.chip.writeOutputs(bus, this.outputs()));
    } catch (e) {
      await this.link.force("relay off", (bus) => this.opts.chip.writeOutputs(bus, this.outputs()));
      throw e;
    }
  }

  async allOff(): Promise<void> {
    this.energized = 0;
    const ok = await this.link.force("all off", (bus) => this.opts.chip.writeOutputs(bus, this.outputs()));
    if (!ok && this.link.state === "ok") this.log.warn("all-off write failed");
  }

  // ── doors ───────────────────────────────────────────────────────────────

  readDoor(channel: number): DoorState {
    return this.doorStates.read(channel);
  }

  private schedulePoll(): void {
    if (!this.running) return;
    const every = this.opts.config.interrupt?.reconcileMs ?? this.opts.config.pollMs ?? 50;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.readInputs().finally(() => this.schedulePoll());
    }, every);
  }

  /** Read the inputs now; a request while a read is in flight makes it read once more after. */
  private readInputs(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.readAgain = false;
        if (!this.running || this.link.state !== "ok") break;
        try {
          const value = await this.link.run("read inputs", (bus) => this.opts.chip.readInputs(bus));
          for (const d of this.opts.doors.bits) {
            const level = (value >> d.bit) & 1;
            this.doorStates.observe(d.channel, level === (this.opts.doors.activeLow ? 0 : 1) ? "closed" : "open");
          }
        } catch {
          // a bus error faulted the link (logged and emitted there); the probe takes over
        }
      } while (this.readAgain);
    })().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }
}

class ExpanderLocks implements LockPart {
  readonly name: string;
  constructor(
    private readonly board: ExpanderBoard,
    readonly channels: readonly number[],
  ) {
    this.name = `${board.name} relays`;
  }
  health(): DeviceHealth {
    return { ...this.board.health("locks"), name: this.name };
  }
  start(): Promise<void> {
    return this.board.start();
  }
  stop(): Promise<void> {
    return this.board.stop();
  }
  pulse(channel: number, ms: number): Promise<void> {
    return this.board.pulse(channel, ms);
  }
  allOff(): Promise<void> {
    return this.board.allOff();
  }
}

class ExpanderDoors extends EventEmitter<DoorEvents> implements DoorPart {
  readonly name: string;
  constructor(
    private readonly board: ExpanderBoard,
    readonly channels: readonly number[],
    source: EventEmitter<DoorEvents>,
  ) {
    super();
    this.name = `${board.name} doors`;
    source.on("change", (channel, state) => this.emit("change", channel, state));
  }
  health(): DeviceHealth {
    return { ...this.board.health("doors"), name: this.name };
  }
  start(): Promise<void> {
    return this.board.start();
  }
  stop(): Promise<void> {
    return this.board.stop();
  }
  read(channel: number): DoorState {
    return this.board.readDoor(channel);
  }
}

/** Door/relay lists given as arrays indexed by bit (null = unused bit), e.g. [1, 2, null, 4]. */
export function bitsFromList(channels: readonly (number | null)[], offset = 0): BitChannel[] {
  return channels.flatMap((channel, i) => (channel === null ? [] : [{ channel, bit: i + offset }]));
}
