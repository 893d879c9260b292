// The parts a real hardware profile is assembled from. A bank's locks may sit on several boards
// (two MCP23017s, two Kerong boards on one RS485 bus); each board owns some of the config's lock
// channel numbers, and the profile routes a channel to its board. Every part reports its own
// health, starts with its relays off and stops with them off.
import type { EventEmitter } from "node:events";
import type { Buzzer, DeviceHealth, Display, DoorEvents, DoorState, InputSource } from "./types.js";

/** A device that stopped answering, and came back: the runtime records both as events. */
export interface AvailabilityEvents {
  fault: [detail: string];
  recovered: [];
}

export interface Part {
  /** For status, selftest and logs, e.g. "mcp23017 i2c-1@0x20", "kerong /dev/rs485 #0". */
  readonly name: string;
  health(): DeviceHealth;
  /** Fault / recovered, where the device can fail on its own (a bus, a port, a USB reader). */
  readonly availability?: EventEmitter<AvailabilityEvents>;
  /** Opens the device, relays off. Must not throw for a device that is absent or not answering:
   *  the part reports itself faulted and keeps retrying with backoff. Throws (LockerError Config or
   *  HardwareUnavailable with a what-to-do message) only when it can never work, e.g. no sysfs GPIO. */
  start(): Promise<void>;
  /** Relays off, handles closed, timers cleared. Must not throw. */
  stop(): Promise<void>;
}

/** Relays / lock outputs for a set of the config's lock channels. */
export interface LockPart extends Part {
  readonly channels: readonly number[];
  /** Energize one channel for `ms`, then release it; resolves once off again. Rejects with a
   *  LockerError when the board does not take the command, and the code says whether the lock may
   *  have moved:
   *  - HardwareUnavailable: NOTHING was sent (no such channel, part stopped or faulted, bus or port
   *    down / not open); the door cannot have been sprung by this call.
   *  - HardwareTimeout: the command was sent (a board with answers may have had it resent once) but
   *    never acknowledged; the lock may or may not have pulsed, so check the door. */
  pulse(channel: number, ms: number): Promise<void>;
  /** Every relay of this part off now. Must not throw. */
  allOff(): Promise<void>;
}

/** Door-sense inputs for a set of lock channels. Emits `change` only on a debounced change. */
export interface DoorPart extends Part, EventEmitter<DoorEvents> {
  readonly channels: readonly number[];
  read(channel: number): DoorState;
}

/** Infrared / item sensors that tell whether a compartment holds something. */
export interface ItemPart {
  readonly itemChannels: readonly number[];
  /** true = something inside, false = empty, null = unknown (no sensor, board not answering). */
  itemPresent(channel: number): boolean | null;
}

export type InputPart = Part & InputSource;
export type DisplayPart = Part & Display;
export type BuzzerPart = Part & Buzzer;
