// The young generation collected right after a lock is pulsed, when nobody is waiting: the daemon
// runs with a 1 MiB young generation (--max-semi-space-size=1, for memory), so a scavenge comes
// every few flows, and one that fell inside the next door decision was most of its p99 (1.6 ms
// against 0.25 ms at p50 here). Emptied after each pulse, it rarely fills within the next
// decision; a collection of a nearly empty young generation costs ~0.1 ms. Needs node's
// --expose-gc (the daemon's flags); without it, nothing happens.
type Gc = (options?: { type?: "minor" | "major"; execution?: "sync" | "async" }) => void;

const gc = (globalThis as { gc?: Gc }).gc;
let pending: NodeJS.Immediate | undefined;

/** A minor collection once the current work is done (coalesced: at most one pending). */
export function collectWhenIdle(): void {
  if (!gc || pending) return;
  pending = setImmediate(() => {
    pending = undefined;
    gc({ type: "minor" });
  });
  pending.unref();
}
