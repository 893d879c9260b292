// The temperature monitor on a real ledger (temp file), simulated SHT3x sensors and fake time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FAULT_AFTER_FAILURES, READ_TIMEOUT_MS, TemperatureMonitor, type TemperatureBounds } from "../../../src/bank/temperature.js";
import { SimTemperatureSensor } from "../../../src/drivers/sim/temperature.js";
import type { TemperatureReading, TemperatureSensor } from "../../../src/drivers/temperature.js";
import { Ledger } from "../../../src/ledger/ledger.js";
import { createLogger, silentLogger, type Logger } from "../../../src/log.js";

const T0 = Date.UTC(2026, 10, 25, 9, 0, 0);
const INTERVAL = 60_000;
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

let dir: string;
let ledger: Ledger;
let monitors: TemperatureMonitor[];

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  dir = mkdtempSync(join(tmpdir(), "lockerd-temperature-"));
  ledger = new Ledger(join(dir, "ledger.db"), { now: () => Date.now() });
  monitors = [];
});

afterEach(async () => {
  for (const m of monitors) await m.stop();
  ledger.close();
  vi.useRealTimers();
  rmSync(dir, { recursive: true, force: true });
});

/** A started monitor; its first round runs at once. */
async function monitor(sensors: Record<string, TemperatureBounds>, log: Logger = silentLogger()): Promise<TemperatureMonitor> {
  const m = new TemperatureMonitor({ ledger, sensors: new Map(Object.entries(sensors)), intervalMs: INTERVAL, log });
  monitors.push(m);
  m.start();
  await advance(0);
  return m;
}

const events = (type: string) => ledger.eventsFrom(1, 1_000_000).filter((e) => e.type === type);
const cleared = (alarm: string) => events("alarm.cleared").filter((e) => e.data.alarm === alarm);

describe("temperature alarms", () => {
  it("raises alarm.temperature once while too warm, and clears once back inside the bounds minus the hysteresis", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 4);
    await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    expect(events("alarm.temperature")).toHaveLength(0);
    fridge.set(9.3); // door seal gone
    await advance(INTERVAL);
    expect(events("alarm.temperature").map((e) => [e.compartment, e.data])).toEqual([["A02", { celsius: 9.3, minC: 2, maxC: 8 }]]);
    await advance(5 * INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(1); // once, not every read
    fridge.set(7.8); // inside the bounds, not yet by the hysteresis
    await advance(2 * INTERVAL);
    expect(cleared("temperature")).toHaveLength(0);
    fridge.set(7.2);
    await advance(INTERVAL);
    expect(cleared("temperature").map((e) => [e.compartment, e.data])).toEqual([["A02", { alarm: "temperature", celsius: 7.2 }]]);
    await advance(3 * INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(1);
    expect(cleared("temperature")).toHaveLength(1);
  });

  it("does not clear on a reading exactly at the hysteresis edge, at either bound", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 4);
    const m = await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    fridge.set(9);
    await advance(INTERVAL);
    fridge.set(7.5); // maxC - 0.5
    await advance(INTERVAL);
    expect(m.latest()[0]?.celsius).toBe(7.5);
    expect(cleared("temperature")).toHaveLength(0);
    fridge.set(7.49);
    await advance(INTERVAL);
    expect(cleared("temperature")).toHaveLength(1);

    fridge.set(1.9); // too cold now
    await advance(INTERVAL);
    expect(events("alarm.temperature").map((e) => e.data.celsius)).toEqual([9, 1.9]);
    fridge.set(2.5); // minC + 0.5
    await advance(INTERVAL);
    expect(cleared("temperature")).toHaveLength(1);
    fridge.set(2.51);
    await advance(INTERVAL);
    expect(cleared("temperature").map((e) => e.data.celsius)).toEqual([7.49, 2.51]);
  });

  it("a reading on a bound is inside it", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 8);
    await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    fridge.set(2);
    await advance(INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(0);
  });
});

describe("sensor faults", () => {
  it("raises alarm.sensor_fault once after 3 failed reads in a row; the next good read clears it", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 4);
    const m = await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    fridge.failing = true; // unplugged
    await advance((FAULT_AFTER_FAILURES - 1) * INTERVAL);
    expect(events("alarm.sensor_fault")).toHaveLength(0);
    await advance(INTERVAL);
    expect(events("alarm.sensor_fault").map((e) => [e.compartment, e.data])).toEqual([
      ["A02", { sensor: "sim A02", error: "sim A02: no answer (NACK)" }],
    ]);
    expect(m.latest()).toEqual([{ compartment: "A02", celsius: null, humidity: null, at: Date.now(), ok: false }]);
    expect(m.openAlarms()).toEqual([{ compartment: "A02", alarm: "sensor_fault" }]);
    await advance(10 * INTERVAL);
    expect(events("alarm.sensor_fault")).toHaveLength(1);
    fridge.failing = false;
    await advance(INTERVAL);
    expect(cleared("sensor_fault").map((e) => [e.compartment, e.data])).toEqual([["A02", { alarm: "sensor_fault" }]]);
    expect(m.latest()[0]).toMatchObject({ ok: true, celsius: 4 });
    expect(m.openAlarms()).toEqual([]);
  });

  it("counts failures in a row only: a good read in between starts the count again", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 4);
    await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    for (let i = 0; i < 4; i++) {
      fridge.failing = true;
      await advance(2 * INTERVAL);
      fridge.failing = false;
      await advance(INTERVAL);
    }
    expect(events("alarm.sensor_fault")).toHaveLength(0);
  });

  it("times out a read that never answers, and keeps reading the other sensors", async () => {
    const hung: TemperatureSensor = { name: "hung", read: () => new Promise<TemperatureReading>(() => {}) };
    const fine = new SimTemperatureSensor("sim B01", 5);
    const m = await monitor({ A02: { sensor: hung, minC: 2, maxC: 8 }, B01: { sensor: fine, minC: 2, maxC: 8 } });
    await advance(READ_TIMEOUT_MS);
    expect(m.latest().map((r) => [r.compartment, r.ok, r.celsius])).toEqual([["A02", false, null], ["B01", true, 5]]);
    await advance(FAULT_AFTER_FAILURES * (INTERVAL + READ_TIMEOUT_MS));
    expect(events("alarm.sensor_fault").map((e) => [e.compartment, e.data])).toEqual([
      ["A02", { sensor: "hung", error: `hung: no answer within ${READ_TIMEOUT_MS} ms` }],
    ]);
    expect(fine.reads).toBe(FAULT_AFTER_FAILURES + 1);
  });
});

describe("the monitor", () => {
  it("latest() reflects each compartment's last reading", async () => {
    const a02 = new SimTemperatureSensor("sim A02", 4, 61);
    const b01 = new SimTemperatureSensor("sim B01", 6.5, 40);
    const m = await monitor({ A02: { sensor: a02, minC: 2, maxC: 8 }, B01: { sensor: b01, minC: 2, maxC: 8 } });
    expect(m.latest()).toEqual([
      { compartment: "A02", celsius: 4, humidity: 61, at: T0, ok: true },
      { compartment: "B01", celsius: 6.5, humidity: 40, at: T0, ok: true },
    ]);
    a02.set(5.25, 58);
    await advance(INTERVAL);
    expect(m.latest()[0]).toEqual({ compartment: "A02", celsius: 5.25, humidity: 58, at: T0 + INTERVAL, ok: true });
  });

  it("restores open alarms from the ledger: no second raise after a restart, and the clear still comes", async () => {
    const fridge = new SimTemperatureSensor("sim A02", 12);
    const first = await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    expect(events("alarm.temperature")).toHaveLength(1);
    await first.stop();
    const second = await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } });
    expect(second.openAlarms()).toEqual([{ compartment: "A02", alarm: "temperature" }]);
    expect(events("alarm.temperature")).toHaveLength(1);
    fridge.set(5);
    await advance(INTERVAL);
    expect(cleared("temperature")).toHaveLength(1);
  });

  it("logs a failed ledger write and raises the alarm on the next read", async () => {
    const lines: string[] = [];
    const log = createLogger("warn", { write: (s: string) => void lines.push(s) });
    const fridge = new SimTemperatureSensor("sim A02", 4);
    await monitor({ A02: { sensor: fridge, minC: 2, maxC: 8 } }, log);
    vi.spyOn(ledger, "transact").mockImplementationOnce(() => {
      throw new Error("disk I/O error");
    });
    fridge.set(10);
    await advance(INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(0);
    expect(lines.map((l) => JSON.parse(l) as { msg: string }).map((l) => l.msg)).toContain("alarm.temperature not recorded");
    await advance(INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(1);
  });

  it("stop() waits for a read in flight and records nothing after it", async () => {
    let answer: ((r: TemperatureReading) => void) | undefined;
    const slow: TemperatureSensor = { name: "slow", read: () => new Promise<TemperatureReading>((resolve) => (answer = resolve)) };
    const m = new TemperatureMonitor({ ledger, sensors: new Map([["A02", { sensor: slow, minC: 2, maxC: 8 }]]), intervalMs: INTERVAL, log: silentLogger() });
    m.start();
    await advance(0);
    let stopped = false;
    const stopping = m.stop().then(() => (stopped = true));
    await advance(0);
    expect(stopped).toBe(false);
    answer?.({ celsius: 30, humidity: null });
    await stopping;
    await advance(10 * INTERVAL);
    expect(events("alarm.temperature")).toHaveLength(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
