// Random edits to a JSON object, for "valid request, slightly wrong" inputs (MQTT and admin).
import type { Rng } from "./rng.js";

/** Sets an own, enumerable key (also "__proto__", which plain assignment would take as the prototype). */
export function setKey(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** One to three edits: a key removed, added or retyped, a value nudged; in `o` or in `o.args`. */
export function mutateObject(rng: Rng, o: Record<string, unknown>): void {
  for (let m = rng.int(1, 3); m > 0; m--) {
    const args = o.args;
    const target = rng.chance(0.5) && args && typeof args === "object" && !Array.isArray(args) ? (args as Record<string, unknown>) : o;
    const keys = Object.keys(target);
    const key = keys.length && rng.chance(0.7) ? rng.pick(keys) : rng.key();
    const value = target[key];
    rng.weighted<() => void>([
      [2, () => delete target[key]],
      [3, () => setKey(target, key, rng.json(2))],
      [1, () => setKey(target, key, rng.pick([null, "", 0, -1, 1.5, 2 ** 53, "x".repeat(300), [], {}, true]))],
      [1, () => setKey(target, key, typeof value === "string" ? `${value}${rng.junk(2)}` : typeof value === "number" ? value + rng.pick([-1, 1, 1e12]) : value)],
    ])();
  }
}
