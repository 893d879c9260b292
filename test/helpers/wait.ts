// Waiting for a condition in real time, and undoing what a test set up, in reverse order.
import { afterEach } from "vitest";
import { slow } from "./slow.js";

/** Resolves with `cond`'s first truthy value (polled every `stepMs`); throws naming `what` after `ms`. */
export async function until<T>(what: string, cond: () => T | undefined | null | false | Promise<T | undefined | null | false>, ms = 3000, stepMs = 5): Promise<T> {
  const end = Date.now() + slow(ms);
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** For a test file: push undo steps; after each test they run newest first. */
export function cleanups(): (() => Promise<unknown>)[] {
  const steps: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of steps.splice(0).reverse()) await f();
  });
  return steps;
}
