// Door left open: a door standing open longer than policies.doorLeftOpenS raises
// alarm.door_left_open (buzzer, display prompt, event); closing it clears the alarm (alarm.cleared).
// Timers are monotonic (setTimeout), so a wall-clock jump neither fires nor delays them.
import { EventEmitter } from "node:events";
import type { DoorState, Hardware } from "../drivers/types.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank } from "./bank.js";

export interface DoorAlarmEvents {
  leftOpen: [compartment: string];
}

export class DoorAlarms extends EventEmitter<DoorAlarmEvents> {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly raised = new Map<string, number>();
  private readonly openedAt = new Map<string, number>();
  private readonly onDoor = (channel: number, state: DoorState) => this.door(channel, state);

  constructor(private readonly deps: { bank: Bank; ledger: Ledger; hardware: Hardware; limitS: number; log: Logger }) {
    super();
  }

  start(): void {
    this.deps.hardware.doors.on("change", this.onDoor);
    for (const c of this.deps.bank.compartments()) {
      const channel = this.deps.bank.layoutOf(c.id).lock;
      if (this.deps.hardware.doors.read(channel) === "open") this.door(channel, "open");
    }
  }

  stop(): void {
    this.deps.hardware.doors.off("change", this.onDoor);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private door(channel: number, state: DoorState): void {
    const id = this.deps.bank.compartments().find((c) => this.deps.bank.layoutOf(c.id).lock === channel)?.id;
    if (!id) return;
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

  private raise(id: string): void {
    this.timers.delete(id);
    this.raised.set(id, Date.now());
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
