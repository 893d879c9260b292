// The small interfaces every device sits behind. Simulated and real drivers both implement them;
// the bank runtime only ever sees these.
import type { EventEmitter } from "node:events";
import type { TemperatureSensor } from "./temperature.js";

export type DoorState = "open" | "closed" | "unknown";

/** Relays or lock-control boards that release solenoid locks. Channels are the config's `lock` numbers. */
export interface LockDriver {
  /** Energize one lock for `ms`, then release it. Resolves once the coil is off again. */
  pulse(channel: number, ms: number): Promise<void>;
  /** Release every lock now (start, exit, fault). Must not throw. */
  allOff(): Promise<void>;
}

export interface DoorEvents {
  change: [channel: number, state: DoorState];
}

/** Door-sense switches, one per lock channel. */
export interface DoorSensors extends EventEmitter<DoorEvents> {
  read(channel: number): DoorState;
}

export type Input =
  | { kind: "keys"; terminal: string; keys: string }
  | { kind: "badge"; terminal: string; id: string }
  | { kind: "scan"; terminal: string; text: string };

export interface InputEvents {
  input: [Input];
}

/** Keypads, badge and QR readers: whatever a person at the bank presents. */
export type InputSource = EventEmitter<InputEvents>;

export interface Display {
  show(lines: readonly string[]): void;
}

export type BuzzerPattern = "ok" | "error" | "alarm" | "key";

export interface Buzzer {
  sound(pattern: BuzzerPattern): void;
}

export interface DeviceHealth {
  name: string;
  kind: "locks" | "doors" | "reader" | "display" | "buzzer" | "sensor";
  health: "ok" | "degraded" | "faulted" | "absent";
  detail: string;
}

/** A device that stopped answering (a board, a reader, a sensor), and came back. */
export interface DeviceEvents {
  fault: [device: string, detail: string];
  recovered: [device: string];
}

/** What a fingerprint module asks of the person during an enrolment. */
export type FingerEnrollStep = { step: "place"; n: number; of: number } | { step: "lift" } | { step: "again"; n: number; of: number; why: string };

export interface FingerprintEvents {
  /** A finger matched the template in `slot` with at least the threshold score. Once per touch. */
  finger: [match: { slot: number; score: number }];
  /** A touch that identified nobody (no_match, low_score, bad_image). Once per touch. */
  rejected: [rejection: { reason: string; slot?: number; score?: number }];
}

/**
 * A fingerprint module (R30x / R503 / AS608 class: drivers/readers/fingerprint): templates live on
 * the module, in numbered slots; the ledger keeps only which slot is whose (bank/fingers.ts).
 */
export interface FingerprintReader extends EventEmitter<FingerprintEvents> {
  /** Names the module in the ledger's slot table and in status, e.g. "fingerprint /dev/serial0". */
  readonly name: string;
  /** The keypad dialogue it belongs to (config `terminal`), if it names one. */
  readonly terminal: string | undefined;
  readonly ready: boolean;
  /** Enrol a finger into a slot ("free": the lowest empty one); rejects with a LockerError (context.reason). */
  enroll(target: number | "free", onStep: (s: FingerEnrollStep) => void, opts?: { captures?: 2 | 3; timeoutMs?: number; signal?: AbortSignal }): Promise<{ slot: number }>;
  deleteSlots(slots: readonly number[]): Promise<void>;
  usedSlots(): Promise<number[]>;
}

/** One bank's devices, as a hardware profile builds them. */
export interface Hardware {
  /** Each device and whether it answers (status, selftest). */
  health(): DeviceHealth[];
  readonly locks: LockDriver;
  readonly doors: DoorSensors;
  readonly inputs: readonly InputSource[];
  readonly display: Display;
  readonly buzzer: Buzzer;
  /** What a compartment's item (infrared) sensor sees: true something inside, null no sensor / no answer. */
  itemPresent?(channel: number): boolean | null;
  /** Temperature sensors of refrigerated compartments, by compartment id. */
  readonly thermometers: ReadonlyMap<string, TemperatureSensor>;
  /** Whether the board driving a lock channel answers now; a pulse to one that does not is refused unsent. Absent: always. */
  lockAvailable?(channel: number): boolean;
  /** The lock channels a device drives: the compartments a fault or recovery concerns. */
  lockChannelsOf?(device: string): number[];
  /** fault / recovered of the devices that can fail on their own. */
  readonly devices?: EventEmitter<DeviceEvents>;
  /** Fingerprint modules (a `fingerprint` reader in the real profile; the simulator's `:finger N`). */
  readonly fingerprints?: readonly FingerprintReader[];
  start(): Promise<void>;
  stop(): Promise<void>;
}
