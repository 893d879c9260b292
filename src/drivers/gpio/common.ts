// Small pieces every GPIO and I2C driver shares: the Pi's pin controllers, the lock channel type,
// cancellable waits, and per-channel serialization of relay pulses.
import { LockChannel } from "./config.js";

/** The lock channel schema lives with the GPIO config schemas (config.ts). */
export { LockChannel };

/** The Pi pin controllers carrying the 40-pin header, in order of preference (chip labels, the same
 *  under sysfs and on the character device): Pi 5, Pi 4, older Pis. */
export const PI_PIN_CONTROLLERS = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"] as const;

/** The errno code of a system error (EIO, ENXIO, EACCES...), if it has one. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof (e as { code: unknown }).code === "string"
    ? (e as { code: string }).code
    : undefined;
}

export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** setTimeout as a promise, all of which `wakeAll()` ends early (stop must not wait out a pulse). */
export class Sleeper {
  private readonly pending = new Map<NodeJS.Timeout, () => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.pending.delete(t);
        resolve();
      }, ms);
      this.pending.set(t, resolve);
    });
  }

  wakeAll(): void {
    for (const [t, resolve] of this.pending) {
      clearTimeout(t);
      resolve();
    }
    this.pending.clear();
  }
}

/** Runs tasks one after another per key: a second pulse of one lock waits for the first. */
export class PerKeyQueue<K> {
  private readonly tails = new Map<K, Promise<unknown>>();

  run<T>(key: K, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
