// A simulated bank: lock board, door switches, keypad/badge/QR input, display and buzzer.
// Used by `npm start`, by the tests and by the benchmarks — one instance each, no globals.
import { EventEmitter } from "node:events";
import { ErrorCode, LockerError } from "../../errors.js";
import { SimTemperatureSensor } from "./temperature.js";
import type { Buzzer, BuzzerPattern, DeviceEvents, DeviceHealth, Display, DoorEvents, DoorSensors, DoorState, FingerEnrollStep, FingerprintEvents, FingerprintReader, Hardware, InputEvents, LockDriver } from "../types.js";

export interface SimEvents {
  unlock: [channel: number, pulseMs: number];
  display: [lines: readonly string[]];
  buzzer: [pattern: BuzzerPattern];
}

export interface SimOptions {
  channels: readonly number[];
  /** Doors spring open when their lock is pulsed (real spring-loaded doors do). */
  springOpen: boolean;
  openDelayMs: number;
  terminal: string;
  /** Simulated coil time runs this much faster than the pulse asked (1 = real time; benchmarks use 0). */
  timeScale?: number;
  /** Refrigerated compartments with a sensor, and the temperature each starts at. */
  thermometers?: readonly { compartment: string; celsius: number }[];
}

export class SimDoors extends EventEmitter<DoorEvents> implements DoorSensors {
  private readonly states = new Map<number, DoorState>();
  constructor(channels: readonly number[]) {
    super();
    for (const c of channels) this.states.set(c, "closed");
  }
  read(channel: number): DoorState {
    return this.states.get(channel) ?? "unknown";
  }
  /** A door fitted later (a compartment added live), closed. */
  add(channel: number): void {
    if (!this.states.has(channel)) this.states.set(channel, "closed");
  }
  has(channel: number): boolean {
    return this.states.has(channel);
  }
  /** What a person does to a door. */
  set(channel: number, state: "open" | "closed"): void {
    if (!this.states.has(channel)) throw new LockerError(ErrorCode.UnknownCompartment, `no door on channel ${channel}`);
    if (this.states.get(channel) === state) return;
    this.states.set(channel, state);
    this.emit("change", channel, state);
  }
}

/**
 * ok: answers. silent: stopped answering, not yet declared down: an unlock goes out and times out
 * (HardwareTimeout), nothing fires. down: declared faulted: an unlock is refused unsent
 * (HardwareUnavailable), as a real board's driver does after its misses.
 */
export const SIM_BOARD_STATES = ["ok", "silent", "down"] as const;
export type SimBoardState = (typeof SIM_BOARD_STATES)[number];
/** How long a silent simulated board keeps an unlock waiting before it times out. */
const SIM_TIMEOUT_MS = 100;

export class SimLockBoard implements LockDriver {
  readonly name = "sim lock board";
  readonly energized = new Set<number>();
  state: SimBoardState = "ok";
  /** Most locks ever energized at once: the power budget check. */
  maxEnergized = 0;
  pulses = 0;
  readonly jammed = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly opts: SimOptions,
    private readonly doors: SimDoors,
    private readonly onUnlock: (channel: number, ms: number) => void,
  ) {}

  pulse(channel: number, ms: number): Promise<void> {
    if (!this.doors.has(channel)) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `no lock on channel ${channel}`));
    if (this.state === "down") return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not answering (simulated)`, { channel }));
    if (this.state === "silent") {
      return new Promise((_, reject) =>
        this.later(SIM_TIMEOUT_MS * (this.opts.timeScale ?? 1), () => reject(new LockerError(ErrorCode.HardwareTimeout, `no answer from ${this.name} (simulated)`, { channel }))),
      );
    }
    this.energized.add(channel);
    this.maxEnergized = Math.max(this.maxEnergized, this.energized.size);
    this.pulses++;
    this.onUnlock(channel, ms);
    const scale = this.opts.timeScale ?? 1;
    if (this.opts.springOpen && !this.jammed.has(channel)) {
      this.later(Math.min(this.opts.openDelayMs, ms) * scale, () => this.doors.set(channel, "open"));
    }
    return new Promise((resolve) => this.later(ms * scale, () => {
      this.energized.delete(channel);
      resolve();
    }));
  }

  async allOff(): Promise<void> {
    this.energized.clear();
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.energized.clear();
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }
}

export class SimInput extends EventEmitter<InputEvents> {
  constructor(private readonly terminal: string) {
    super();
  }
  keys(keys: string): void {
    this.emit("input", { kind: "keys", terminal: this.terminal, keys });
  }
  badge(id: string): void {
    this.emit("input", { kind: "badge", terminal: this.terminal, id });
  }
  scan(text: string): void {
    this.emit("input", { kind: "scan", terminal: this.terminal, text });
  }
}

/**
 * A fingerprint module as the simulator has it: fingers are names ("7"), a slot holds the finger
 * enrolled into it, a finger on the sensor matches its slot (score 120) or nothing. Enrolment takes
 * its touches from place(), as the real module takes them from the sensor.
 */
export class SimFingerprint extends EventEmitter<FingerprintEvents> implements FingerprintReader {
  readonly name = "fingerprint sim";
  readonly terminal = undefined;
  readonly ready = true;
  readonly librarySize = 200;
  /** slot → finger */
  readonly slots = new Map<number, string>();
  private capture: ((finger: string) => void) | undefined;

  /** A finger on the sensor, then lifted. */
  place(finger: string): void {
    if (this.capture) return this.capture(finger);
    const slot = [...this.slots].find(([, f]) => f === finger)?.[0];
    if (slot === undefined) this.emit("rejected", { reason: "no_match" });
    else this.emit("finger", { slot, score: 120 });
  }

  async enroll(target: number | "free", onStep: (s: FingerEnrollStep) => void, opts: { captures?: 2 | 3; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<{ slot: number }> {
    if (this.capture) throw new LockerError(ErrorCode.Busy, `${this.name} is already enrolling`, { reason: "busy" });
    const of = opts.captures ?? 2;
    const touches: string[] = [];
    try {
      for (let n = 1; n <= of; n++) {
        onStep({ step: "place", n, of });
        touches.push(
          await new Promise<string>((resolve, reject) => {
            const cancel = () => {
              clearTimeout(timer);
              reject(new LockerError(ErrorCode.BadInput, "enrolment cancelled", { reason: "cancelled" }));
            };
            const timer = setTimeout(() => {
              opts.signal?.removeEventListener("abort", cancel);
              reject(new LockerError(ErrorCode.Expired, "no finger on the sensor in time", { reason: "timeout" }));
            }, opts.timeoutMs ?? 20_000);
            if (opts.signal?.aborted) return cancel();
            opts.signal?.addEventListener("abort", cancel, { once: true });
            this.capture = (f) => {
              clearTimeout(timer);
              opts.signal?.removeEventListener("abort", cancel);
              resolve(f);
            };
          }),
        );
        this.capture = undefined;
        if (n < of) onStep({ step: "lift" });
      }
    } finally {
      this.capture = undefined;
    }
    if (new Set(touches).size !== 1) throw new LockerError(ErrorCode.InvalidCredential, "the touches are not the same finger", { reason: "combine_failed" });
    let slot = target === "free" ? -1 : target;
    if (target === "free") for (slot = 0; this.slots.has(slot); slot++);
    if (slot >= this.librarySize) throw new LockerError(ErrorCode.NoFit, "the module's library is full", { reason: "no_free_slot" });
    this.slots.set(slot, touches[0]!);
    return { slot };
  }

  async deleteSlots(slots: readonly number[]): Promise<void> {
    for (const s of slots) this.slots.delete(s);
  }

  async usedSlots(): Promise<number[]> {
    return [...this.slots.keys()].sort((a, b) => a - b);
  }
}

export class SimHardware extends EventEmitter<SimEvents> implements Hardware {
  readonly doors: SimDoors;
  readonly locks: SimLockBoard;
  readonly keypad: SimInput;
  readonly inputs: readonly SimInput[];
  readonly display: Display & { lines: readonly string[] };
  readonly buzzer: Buzzer;
  readonly thermometers = new Map<string, SimTemperatureSensor>();
  /** Simulated item sensors: a channel present here has one, and its value is what it sees. */
  readonly items = new Map<number, boolean>();
  /** fault / recovered of the simulated lock board (setBoard). */
  readonly devices = new EventEmitter<DeviceEvents>();
  /** The simulated fingerprint module: `finger.place("7")` is finger 7 on the sensor (`:finger 7`). */
  readonly finger = new SimFingerprint();
  readonly fingerprints: readonly FingerprintReader[] = [this.finger];
  /** Lock channels wired: options.channels, and any added later (addChannels). */
  private readonly channels: number[];

  constructor(readonly options: SimOptions) {
    super();
    this.channels = [...options.channels];
    for (const t of options.thermometers ?? []) this.thermometers.set(t.compartment, new SimTemperatureSensor(`sim ${t.compartment}`, t.celsius));
    this.doors = new SimDoors(options.channels);
    this.locks = new SimLockBoard(options, this.doors, (c, ms) => this.emit("unlock", c, ms));
    this.keypad = new SimInput(options.terminal);
    this.inputs = [this.keypad];
    const display = {
      lines: [] as readonly string[],
      show: (lines: readonly string[]) => {
        display.lines = lines;
        this.emit("display", lines);
      },
    };
    this.display = display;
    this.buzzer = { sound: (p) => this.emit("buzzer", p) };
  }

  itemPresent(channel: number): boolean | null {
    return this.items.get(channel) ?? null;
  }

  /** Lock channels wired later (compartments added by a live layout change): each gets a closed door. */
  addChannels(channels: readonly number[]): void {
    const fresh = channels.filter((c) => !this.doors.has(c));
    for (const c of fresh) this.doors.add(c);
    if (fresh.length) this.channels.push(...fresh);
  }

  /** The simulated lock board stops answering, is declared down, or answers again (a fault / recovered event on the change to or from down). */
  setBoard(state: SimBoardState): void {
    const before = this.locks.state;
    if (before === state) return;
    this.locks.state = state;
    if (state === "down") this.devices.emit("fault", this.locks.name, "not answering (simulated)");
    else if (before === "down") this.devices.emit("recovered", this.locks.name);
  }

  lockAvailable(channel: number): boolean {
    return this.locks.state !== "down" && this.doors.has(channel);
  }

  lockChannelsOf(device: string): number[] {
    return device === this.locks.name ? [...this.channels] : [];
  }

  health(): DeviceHealth[] {
    const jammed = [...this.locks.jammed];
    return [
      {
        name: this.locks.name,
        kind: "locks",
        health: this.locks.state === "ok" ? "ok" : this.locks.state === "silent" ? "degraded" : "faulted",
        detail: `${this.channels.length} channels${jammed.length ? `, jammed (simulated): ${jammed.join(", ")}` : ""}${this.locks.state === "ok" ? "" : `, ${this.locks.state} (simulated)`}`,
      },
      { name: "sim door switches", kind: "doors", health: "ok", detail: `${this.channels.length} inputs` },
      { name: "sim keypad/badge/QR", kind: "reader", health: "ok", detail: `terminal ${this.options.terminal}` },
      { name: "sim display", kind: "display", health: "ok", detail: "4x20" },
      { name: "sim buzzer", kind: "buzzer", health: "ok", detail: "" },
      ...[...this.thermometers].map(([id, t]): DeviceHealth => ({
        name: t.name,
        kind: "sensor",
        health: t.failing ? "faulted" : "ok",
        detail: t.failing ? `${id}: not answering (simulated)` : `${id}: SHT3x-class`,
      })),
    ];
  }

  async start(): Promise<void> {
    await this.locks.allOff();
  }

  async stop(): Promise<void> {
    await this.locks.allOff();
    this.locks.stop();
  }
}
