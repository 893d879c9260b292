// A pulse on its way asks for the young generation's collection (bank/idle-gc.ts): once per pulse,
// after the driver was asked, never before it, so the collection never delays an unlock. What the
// collection itself does is test/unit/bank/idle-gc.test.ts.
import { describe, expect, it, vi } from "vitest";

const calls: string[] = [];
vi.mock("../../../src/bank/idle-gc.js", () => ({ collectWhenIdle: () => calls.push("collect") }));

const { ActuationQueue } = await import("../../../src/bank/actuation.js");
const { DoorWaiters } = await import("../../../src/bank/doors.js");
const { SimDoors, SimLockBoard } = await import("../../../src/drivers/sim/hardware.js");
const { silentLogger } = await import("../../../src/log.js");

describe("a pulse and the garbage collection after it", () => {
  it("asks for one collection per pulse, right after the driver was asked to pulse", async () => {
    const doors = new SimDoors([0, 1]);
    const board = new SimLockBoard({ channels: [0, 1], springOpen: true, openDelayMs: 1, terminal: "t" }, doors, (c) => calls.push(`pulse ${c}`));
    const waiters = new DoorWaiters((c) => doors.read(c === "A01" ? 0 : 1) === "open");
    doors.on("change", (ch, state) => state === "open" && waiters.opened(ch === 0 ? "A01" : "A02"));
    const q = new ActuationQueue({ locks: board, doors: waiters, log: silentLogger(), options: { pulseMs: 50, maxConcurrent: 1, openVerifyMs: 2000, retries: 0 }, beforeRetry: () => {} });
    const results = await Promise.all([q.open("A01", 0), q.open("A02", 1)]);
    expect(results.map((r) => r.opened)).toEqual([true, true]);
    expect(calls).toEqual(["pulse 0", "collect", "pulse 1", "collect"]);
  });
});
