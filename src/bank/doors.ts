// Who is waiting for which door to open. The bank feeds it every door edge; the actuation queue
// asks it whether a pulsed door opened in time.
import type { DoorWatch } from "./actuation.js";

export class DoorWaiters implements DoorWatch {
  private readonly waiters = new Map<string, Set<(opened: boolean) => void>>();

  constructor(
    private readonly isOpen: (compartment: string) => boolean,
    private readonly canRead: (compartment: string) => boolean = () => true,
  ) {}

  readable(compartment: string): boolean {
    return this.canRead(compartment);
  }

  waitOpen(compartment: string, timeoutMs: number): { promise: Promise<boolean>; cancel: () => void } {
    let settle: (opened: boolean) => void = () => {};
    const promise = new Promise<boolean>((resolve) => {
      let set = this.waiters.get(compartment);
      if (!set) this.waiters.set(compartment, (set = new Set()));
      const timer = setTimeout(() => settle(false), timeoutMs);
      settle = (opened) => {
        clearTimeout(timer);
        set.delete(settle);
        if (!set.size) this.waiters.delete(compartment);
        resolve(opened);
      };
      set.add(settle);
    });
    // Held open already (someone pulling the handle as it releases): it opened.
    if (this.isOpen(compartment)) settle(true);
    return { promise, cancel: () => settle(false) };
  }

  /** A door was seen open. */
  opened(compartment: string): void {
    const set = this.waiters.get(compartment);
    if (set) for (const settle of [...set]) settle(true);
  }

  /** Anyone waiting on this door right now (a pulse in flight)? */
  expecting(compartment: string): boolean {
    return this.waiters.has(compartment);
  }

  cancelAll(): void {
    for (const set of [...this.waiters.values()]) for (const settle of [...set]) settle(false);
  }
}
