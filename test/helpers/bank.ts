// An in-process bank on the simulated hardware, with a temporary data directory, for tests that
// need a controlled clock. Same Runtime as the daemon builds; no sim socket.
import { afterEach, beforeEach, vi } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/schema.js";
import type { SimHardware } from "../../src/drivers/sim/hardware.js";
import type { Hardware } from "../../src/drivers/types.js";
import { silentLogger } from "../../src/log.js";
import { Runtime } from "../../src/runtime.js";
import { exampleConfig, removeDir, tempDir } from "./daemon.js";

export interface TestBank {
  rt: Runtime;
  /** The config the bank runs with. */
  config: Config;
  hw: SimHardware;
  dir: string;
  /** Display lines now. */
  screen: () => string;
  events: (type?: string) => ReturnType<Runtime["ledger"]["eventsFrom"]>;
  close: () => Promise<void>;
}

export async function testBank(patch?: (cfg: Record<string, any>) => void, dir = tempDir(), onHardware?: (hw: SimHardware) => void): Promise<TestBank> {
  const raw = exampleConfig() as Record<string, any>;
  raw.locks = { ...raw.locks, pulseMs: 100, openVerifyMs: 500 };
  patch?.(raw);
  const config = parseConfig(raw);
  const rt = new Runtime({
    config,
    dataDir: `${dir}/data`,
    log: silentLogger(),
    version: "test",
    simSocket: false,
    adminSocket: false,
    // No timesyncd here, and vi.setSystemTime is time passing, not a step: the clock is trusted as the
    // test sets it, whatever the host's NTP state (sync/clock.ts; test/unit/sync/unsynced-clock.test.ts tests steps).
    timesyncDir: `${dir}/no-timesyncd`,
    monotonic: () => Date.now(),
    ...(onHardware ? { onHardware: (hw: Hardware) => onHardware(hw as SimHardware) } : {}),
  });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  return {
    rt,
    config,
    hw,
    dir,
    screen: () => hw.display.lines.join(" | "),
    events: (type) => rt.ledger.eventsFrom(1, 1_000_000).filter((e) => !type || e.type === type),
    close: async () => {
      await rt.stop();
      removeDir(dir);
    },
  };
}

/** Courier deposit through the keypad; the sim door springs open, the test closes it. Returns the code. */
export async function keypadDeposit(
  b: TestBank,
  advance: (ms: number) => Promise<unknown>,
  /** keepSession: the courier does not press * at "Another parcel?" (the session ends by itself). */
  opts: { size?: string; recipient?: string; keepSession?: boolean } = {},
): Promise<{ compartment: string; code: string; parcel: string }> {
  let notified: { compartment: string; code: string; parcel: string } | undefined;
  const listener = (n: { compartment: string; code: string; parcel: string }) => (notified = n);
  b.rt.bank.on("codeIssued", listener);
  try {
    b.hw.keypad.keys("*2468#");
    b.hw.keypad.keys(opts.size ?? "1");
    const loading = b.rt.ledger.compartments().find((c) => c.state === "loading");
    if (!loading) throw new Error(`no compartment opened: ${b.screen()}`);
    await advance(200); // spring opens, pulse ends
    b.hw.doors.set(b.rt.bank.layoutOf(loading.id).lock, "closed");
    b.hw.keypad.keys(`${opts.recipient ?? "1001"}#`);
    if (!notified) throw new Error(`no code issued: ${b.screen()}`);
    if (!opts.keepSession) b.hw.keypad.keys("*");
    return notified;
  } finally {
    b.rt.bank.off("codeIssued", listener);
  }
}

/**
 * For a test file: fake timers from `start` before each test, and the bank it opened closed (and
 * its directory removed) after. `open` replaces the current bank (e.g. a restart on the same dir).
 */
export function fakeClockBanks(start = "2026-11-25T09:00:00Z") {
  let current: TestBank | undefined;
  beforeEach(() => vi.useFakeTimers({ now: new Date(start) }));
  afterEach(async () => {
    await current?.close();
    current = undefined;
    vi.useRealTimers();
  });
  return {
    open: async (patch?: (cfg: Record<string, any>) => void, dir?: string, onHardware?: (hw: SimHardware) => void): Promise<TestBank> =>
      (current = await testBank(patch, dir, onHardware)),
    advance: (ms: number) => vi.advanceTimersByTimeAsync(ms),
  };
}
