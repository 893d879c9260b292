// Fake time for the fuzzers. The tests pass vitest's fake timers; the long form (scripts/fuzz.ts,
// plain node) uses node:test's MockTimers. Either way setTimeout, setInterval and Date are fake
// and setImmediate is real, so socket I/O still flows while the bank's timers wait for advance().

export interface FuzzClock {
  /** Let `ms` of fake time pass: due timers run, with promise continuations between them. */
  advance(ms: number): Promise<void>;
}

/** The wall-clock time every fuzz run starts at (as the tests' fakeClockBanks). */
export const FUZZ_T0 = Date.parse("2026-11-25T09:00:00Z");

const realImmediate = setImmediate;

/** One turn of the real event loop: pending I/O callbacks and promise continuations run. */
export const turn = () => new Promise<void>((resolve) => realImmediate(resolve));

/** node:test MockTimers, stepped so that promise chains between timers run as they would. */
export async function nodeMockClock(): Promise<{ clock: FuzzClock; restore: () => void }> {
  const { mock } = await import("node:test");
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: FUZZ_T0 });
  const clock: FuzzClock = {
    async advance(ms) {
      for (let left = ms; left > 0; left -= 100) {
        mock.timers.tick(Math.min(left, 100));
        await turn();
      }
    },
  };
  return { clock, restore: () => mock.timers.reset() };
}
