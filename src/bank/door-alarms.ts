// Door left open: a door standing open longer than policies.doorLeftOpenS raises
// alarm.door_left_open (buzzer, display prompt, event); closing it clears the alarm (alarm.cleared).
// Flapping: FLAP_EDGES edges within FLAP_WINDOW_MS (a loose magnet, a broken switch) raise
// alarm.sensor_flapping once; FLAP_QUIET_MS without an edge clears it. (Contact bounce of a few
// milliseconds is the input driver's to debounce; this catches a sensor that is failing.)
// Timers are monotonic (setTimeout), so a wall-clock jump neither fires nor delays them.
import { EventEmitter } from "node:events";
import type { DoorState, Hardware } from "../drivers/types.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank } from "./bank.js";

const FLAP_EDGES = 10;
const FLAP_WINDOW_MS = 10_000;
const FLAP_QUIET_MS = 60_000;

export interface DoorAlarmEvents {
  leftOpen: [compartment: string];
}

export class DoorAlarms extends EventEmitter<DoorAlarmEvents> {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly raised = new Set<string>();
  private readonly openedAt = new Map<string, number>();
  private readonly edges = new Map<string, number[]>();
  private readonly flapping = new Map<string, NodeJS.Timeout>();
  private readonly onDoor = (channel: number, state: DoorState) => this.door(channel, state);

  constructor(private readonly deps: { bank: Bank; ledger: Ledger; hardware: Hardware; limitS: number; log: Logger }) {
    super();
  }

  start(): void {
    this.deps.hardware.doors.on("change", this.onDoor);
    // The compartments the bank serves (a retired one is in neither list).
    for (const { lock } of this.deps.bank.layout) {
      if (this.deps.hardware.doors.read(lock) === "open") this.door(lock, "open");
    }
  }

  stop(): void {
    this.deps.hardware.doors.off("change", this.onDoor);
    for (const t of [...this.timers.values(), ...this.flapping.values()]) clearTimeout(t);
    this.timers.clear();
    this.flapping.clear();
  }

  private door(channel: number, state: DoorState): void {
    const id = this.deps.bank.compartmentOnChannel(channel);
    if (!id) return;
    this.countEdge(id);
    if (state === "open") {
      if (this.timers.has(id)) return;
      this.openedAt.set(id, performance.now());
      const t = setTimeout(() => this.raise(id), this.deps.limitS * 1000);
      t.unref();
      this.timers.set(id, t);
      return;
    }
    clearTimeout(this.timers.get(id));
    this.timers.delete(id);
    const openedAt = this.openedAt.get(id);
    this.openedAt.delete(id);
    if (this.raised.delete(id)) {
      const openForMs = openedAt === undefined ? null : Math.round(performance.now() - openedAt);
      this.record(() => this.deps.ledger.transact((tx) => tx.event({ type: "alarm.cleared", compartment: id, data: { alarm: "door_left_open", openForMs } })));
    }
  }

  private countEdge(id: string): void {
    const now = performance.now();
    const recent = (this.edges.get(id) ?? []).filter((t) => now - t < FLAP_WINDOW_MS);
    recent.push(now);
    this.edges.set(id, recent);
    const quiet = this.flapping.get(id);
    if (quiet) {
      quiet.refresh(); // still flapping: the all-clear waits for a quiet minute
      return;
    }
    if (recent.length < FLAP_EDGES) return;
    const t = setTimeout(() => {
      this.flapping.delete(id);
      this.record(() => this.deps.ledger.transact((tx) => tx.event({ type: "alarm.cleared", compartment: id, data: { alarm: "sensor_flapping" } })));
    }, FLAP_QUIET_MS);
    t.unref();
    this.flapping.set(id, t);
    this.record(() =>
      this.deps.ledger.transact((tx) =>
        tx.event({ type: "alarm.sensor_flapping", compartment: id, data: { edges: recent.length, windowMs: FLAP_WINDOW_MS } }),
      ),
    );
  }

  /** Compartments whose door sensor is flapping now (status, alarms). */
  flappingNow(): string[] {
    return [...this.flapping.keys()];
  }

  private raise(id: string): void {
    this.timers.delete(id);
    this.raised.add(id);
    this.record(() =>
      this.deps.ledger.transact((tx) => tx.event({ type: "alarm.door_left_open", compartment: id, data: { openForS: this.deps.limitS } })),
    );
    this.emit("leftOpen", id);
  }

  private record(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.deps.log.error({ err: e }, "door alarm not recorded");
    }
  }
}
