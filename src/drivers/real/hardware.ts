// A real bank's hardware, assembled from parts (drivers/parts.ts): lock outputs and door inputs on
// any mix of boards (GPIO, I2C expanders, RS485 lock boards), item sensors, readers, a display, a
// buzzer and temperature sensors. The bank sees the same Hardware interface as the simulated one.
//
//   bank ─▶ locks.pulse(channel) ─▶ the LockPart that owns the channel
//   every DoorPart's change ─▶ doors.change (one emitter) ─▶ bank
//   parts' availability fault/recovered ─▶ `device` events ─▶ runtime (ledger event, status)
import { EventEmitter } from "node:events";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, BuzzerPart, DisplayPart, DoorPart, InputPart, ItemPart, LockPart, Part } from "../parts.js";
import type { TemperatureSensor } from "../temperature.js";
import type { Buzzer, DeviceEvents, DeviceHealth, Display, DoorEvents, DoorSensors, DoorState, FingerprintReader, Hardware, LockDriver } from "../types.js";

export interface RealParts {
  locks: readonly LockPart[];
  doors: readonly DoorPart[];
  items: readonly ItemPart[];
  inputs: readonly InputPart[];
  /** Fingerprint modules (also in `all`). */
  fingerprints?: readonly FingerprintReader[] | undefined;
  display?: DisplayPart | undefined;
  buzzer?: BuzzerPart | undefined;
  /** By compartment id. */
  thermometers: ReadonlyMap<string, TemperatureSensor & Partial<Part>>;
  /** Every distinct part, for start/stop/health (a board may be lock, door and item part at once). */
  all: readonly Part[];
  /** Parts the bank works without (the buzzer/LED): one that cannot start is reported and skipped. */
  optional?: ReadonlySet<Part> | undefined;
}

export type { DeviceEvents };

class RoutedLocks implements LockDriver {
  private readonly byChannel = new Map<number, LockPart>();
  constructor(parts: readonly LockPart[]) {
    for (const p of parts) for (const c of p.channels) this.byChannel.set(c, p);
  }
  part(channel: number): LockPart | undefined {
    return this.byChannel.get(channel);
  }
  pulse(channel: number, ms: number): Promise<void> {
    const part = this.byChannel.get(channel);
    if (!part) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `no lock board drives channel ${channel}`));
    return part.pulse(channel, ms);
  }
  async allOff(): Promise<void> {
    await Promise.all([...new Set(this.byChannel.values())].map((p) => p.allOff().catch(() => undefined)));
  }
}

class MergedDoors extends EventEmitter<DoorEvents> implements DoorSensors {
  private readonly byChannel = new Map<number, DoorPart>();
  private readonly relay = (channel: number, state: DoorState) => this.emit("change", channel, state);
  constructor(private readonly parts: readonly DoorPart[]) {
    super();
    for (const p of parts) for (const c of p.channels) this.byChannel.set(c, p);
  }
  read(channel: number): DoorState {
    return this.byChannel.get(channel)?.read(channel) ?? "unknown";
  }
  attach(): void {
    for (const p of this.parts) p.on("change", this.relay);
  }
  detach(): void {
    for (const p of this.parts) p.off("change", this.relay);
  }
}

/** Shows nothing (a bank without a display): the terminal still runs, people see the doors. */
const NO_DISPLAY: Display = { show: () => undefined };
const NO_BUZZER: Buzzer = { sound: () => undefined };
/** Longest wait at start for polled boards' first door readings. */
const FIRST_READING_MS = 2000;

export class RealHardware extends EventEmitter<DeviceEvents> implements Hardware {
  readonly locks: RoutedLocks;
  readonly doors: MergedDoors;
  readonly inputs: readonly InputPart[];
  readonly fingerprints: readonly FingerprintReader[];
  readonly display: Display;
  readonly buzzer: Buzzer;
  readonly thermometers: ReadonlyMap<string, TemperatureSensor>;
  private readonly itemsByChannel = new Map<number, ItemPart>();
  private readonly unhook: (() => void)[] = [];
  /** Parts between their `fault` and `recovered`. */
  private readonly faulted = new Set<string>();
  /** Optional parts that could not start, and why. */
  private readonly skipped = new Map<Part, string>();

  constructor(
    private readonly parts: RealParts,
    private readonly log: Logger,
  ) {
    super();
    this.locks = new RoutedLocks(parts.locks);
    this.doors = new MergedDoors(parts.doors);
    this.inputs = parts.inputs;
    this.fingerprints = parts.fingerprints ?? [];
    this.display = parts.display ?? NO_DISPLAY;
    this.buzzer = parts.buzzer ?? NO_BUZZER;
    this.thermometers = parts.thermometers;
    for (const p of parts.items) for (const c of p.itemChannels) this.itemsByChannel.set(c, p);
  }

  get devices(): EventEmitter<DeviceEvents> {
    return this;
  }

  /** A lock whose board is faulted refuses pulses unsent: the bank neither offers nor opens it. */
  lockAvailable(channel: number): boolean {
    const part = this.locks.part(channel);
    return part !== undefined && !this.faulted.has(part.name);
  }

  lockChannelsOf(device: string): number[] {
    return this.parts.locks.filter((p) => p.name === device).flatMap((p) => [...p.channels]);
  }

  /** Whether the item sensor of a lock channel sees something inside (null: no sensor, or no answer). */
  itemPresent(channel: number): boolean | null {
    return this.itemsByChannel.get(channel)?.itemPresent(channel) ?? null;
  }

  health(): DeviceHealth[] {
    const out = this.parts.all.map((p) => {
      const why = this.skipped.get(p);
      return why === undefined ? p.health() : { ...p.health(), health: "faulted" as const, detail: `skipped at start: ${why}` };
    });
    for (const [id, t] of this.parts.thermometers) {
      if (!this.parts.all.includes(t as Part) && t.health) out.push({ ...t.health(), detail: `${id}: ${t.health().detail}` });
    }
    return out;
  }

  /** Every part up, relays off. A required part that cannot work here at all (no GPIO, a missing chip)
   *  fails the start with a LockerError naming it (exit 78); an optional one (the buzzer/LED) is
   *  logged, reported as a `fault` and skipped. */
  async start(): Promise<void> {
    for (const p of this.parts.all) {
      // Parts carry fault/recovered on `availability`, or on themselves (I2C boards, the LCD).
      const a = p.availability ?? (p instanceof EventEmitter ? (p as unknown as EventEmitter<AvailabilityEvents>) : undefined);
      if (a) {
        const onFault = (detail: string) => {
          this.log.warn({ device: p.name, detail }, "device fault");
          this.faulted.add(p.name);
          this.emit("fault", p.name, detail);
        };
        const onRecovered = () => {
          this.log.info({ device: p.name }, "device recovered");
          this.faulted.delete(p.name);
          this.emit("recovered", p.name);
        };
        a.on("fault", onFault);
        a.on("recovered", onRecovered);
        this.unhook.push(() => {
          a.off("fault", onFault);
          a.off("recovered", onRecovered);
        });
      }
    }
    const started: Part[] = [];
    try {
      for (const p of this.parts.all) {
        try {
          await p.start();
        } catch (e) {
          if (!this.parts.optional?.has(p)) throw named(p, e);
          const why = e instanceof Error ? e.message : String(e);
          this.skipped.set(p, why);
          this.log.warn({ device: p.name, err: e }, `${p.name} cannot start and is skipped (optional): ${why}`);
          this.emit("fault", p.name, `cannot start, skipped: ${why}`);
          continue;
        }
        started.push(p);
      }
    } catch (e) {
      for (const p of started.reverse()) await p.stop().catch(() => undefined);
      throw e;
    }
    await this.locks.allOff();
    this.doors.attach();
    await this.firstReadings(FIRST_READING_MS);
  }

  /**
   * Polled boards know their doors only after a first poll: wait for it (bounded), so the bank's
   * start reads every door as it is. A board that does not answer leaves its doors unknown.
   */
  private async firstReadings(timeoutMs: number): Promise<void> {
    const channels = this.parts.doors.flatMap((p) => [...p.channels]);
    const until = performance.now() + timeoutMs;
    while (channels.some((c) => this.doors.read(c) === "unknown") && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Relays off, every part stopped in reverse order. Never throws. */
  async stop(): Promise<void> {
    this.doors.detach();
    for (const u of this.unhook.splice(0)) u();
    await this.locks.allOff();
    for (const p of [...this.parts.all].reverse()) {
      try {
        await p.stop();
      } catch (e) {
        this.log.error({ err: e, device: p.name }, "device stop failed");
      }
    }
  }
}

/** A required part's start error, its message led by the part's name (what main prints before exit 78). */
function named(p: Part, e: unknown): unknown {
  if (!(e instanceof LockerError) || e.message.startsWith(p.name)) return e;
  return new LockerError(e.code, `${p.name}: ${e.message}`, { ...e.context, device: p.name });
}
