// Item (infrared) sensors, where the lock boards have them (Kerong KR-CU16 class): after a pickup
// or removal closes the door, the compartment should be empty. If the sensor still sees something
// once it has had time to look again, the pickup is reported (alarm.item_left_inside) and the
// compartment is held out of assignment until a technician has looked (lockerctl enable clears it),
// so nobody's next parcel goes in on top of it.
import type { Hardware } from "../drivers/types.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Logger } from "../log.js";
import type { Bank, BankEvents } from "./bank.js";

/** Boards are polled every ~250 ms: two polls after the door closed, the sensor has seen inside. */
export const ITEM_SETTLE_MS = 1500;

export class ItemSensors {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly onUnloaded = (e: BankEvents["unloaded"][0]) => this.check(e);

  constructor(private readonly deps: { bank: Bank; ledger: Ledger; hardware: Hardware; now: () => number; log: Logger }) {}

  start(): void {
    if (this.deps.hardware.itemPresent) this.deps.bank.on("unloaded", this.onUnloaded);
  }

  stop(): void {
    this.deps.bank.off("unloaded", this.onUnloaded);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private check(e: BankEvents["unloaded"][0]): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      const { bank, ledger, hardware, now, log } = this.deps;
      if (hardware.itemPresent?.(bank.layoutOf(e.compartment).lock) !== true) return;
      const c = ledger.compartment(e.compartment);
      if (!c || c.state !== "free" || c.inspectSince !== null) return; // already in use again, or flagged
      try {
        ledger.transact((tx) => {
          tx.updateCompartment(c.id, { inspectSince: now() });
          tx.event({ type: "alarm.item_left_inside", compartment: c.id, parcel: e.parcel, data: { via: e.via } });
        });
      } catch (err) {
        log.error({ err, compartment: c.id }, "item sensor alarm not recorded");
      }
    }, ITEM_SETTLE_MS);
    t.unref();
    this.timers.add(t);
  }
}
