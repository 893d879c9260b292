// Refrigerated compartments: every sensor is read once per interval (a setTimeout chain, so rounds
// never overlap; sensors one after another, as they share an I2C bus) and each reading becomes an
// alarm decision and the telemetry latest() reports.
//
//            reading < minC or > maxC                minC + 0.5 < reading < maxC - 0.5
//   in range ─────────────────────────▶ alarm.temperature ──────────────────────────────▶ alarm.cleared
//
//   3 failed reads in a row ──▶ alarm.sensor_fault ──the next good read──▶ alarm.cleared
//
// Each alarm is raised once and stays raised until cleared; the open alarms are read back from the
// ledger at start, so a restart neither raises them twice nor leaves them open forever.
import type { TemperatureReading, TemperatureSensor } from "../drivers/temperature.js";
import { HYSTERESIS_C } from "../domain/temperature.js";
import { ErrorCode, LockerError } from "../errors.js";
import type { Ledger, LedgerTx } from "../ledger/ledger.js";
import { EVENTS_ALARMS } from "../ledger/migrations.js";
import type { Logger } from "../log.js";

export { HYSTERESIS_C };
/** Consecutive failed reads that make a sensor fault. */
export const FAULT_AFTER_FAILURES = 3;
/** A read that takes longer failed (an SHT3x measures in ~15 ms; a hung bus must not stall the chain). */
export const READ_TIMEOUT_MS = 2000;

export interface TemperatureBounds {
  sensor: TemperatureSensor;
  minC: number;
  maxC: number;
}

/** The last read of one compartment's sensor (status, telemetry). */
export interface TemperatureStatus {
  compartment: string;
  /** °C to 0.01, null when the last read failed or none was made yet. */
  celsius: number | null;
  humidity: number | null;
  /** Wall-clock ms of the last read attempt; null before the first. */
  at: number | null;
  ok: boolean;
}

export type TemperatureAlarm = "temperature" | "sensor_fault";

interface SensorState {
  failures: number;
  tooWarmOrCold: boolean;
  faulted: boolean;
  last: TemperatureStatus;
}

interface OpenAlarmRow {
  compartment: string;
  tRaised: number | null;
  tCleared: number | null;
  fRaised: number | null;
  fCleared: number | null;
}

/** Decisions and records use the same value: °C to 0.01 (an SHT3x is accurate to ±0.2 °C at best). */
const round2 = (v: number): number => Math.round(v * 100) / 100;

export class TemperatureMonitor {
  private readonly state = new Map<string, SensorState>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private round: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: { ledger: Ledger; sensors: ReadonlyMap<string, TemperatureBounds>; intervalMs: number; log: Logger },
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const compartment of this.deps.sensors.keys()) {
      this.state.set(compartment, {
        failures: 0,
        tooWarmOrCold: false,
        faulted: false,
        last: { compartment, celsius: null, humidity: null, at: null, ok: false },
      });
    }
    this.restoreOpenAlarms();
    this.schedule(0); // first round at once: status has readings right after start
  }

  /** Stops the chain; resolves once a round in progress has finished (nothing is recorded after). */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.round;
  }

  latest(): TemperatureStatus[] {
    return [...this.state.values()].map((s) => ({ ...s.last }));
  }

  /** Alarms raised and not yet cleared, per compartment. */
  openAlarms(): { compartment: string; alarm: TemperatureAlarm }[] {
    const out: { compartment: string; alarm: TemperatureAlarm }[] = [];
    for (const [compartment, s] of this.state) {
      if (s.tooWarmOrCold) out.push({ compartment, alarm: "temperature" });
      if (s.faulted) out.push({ compartment, alarm: "sensor_fault" });
    }
    return out;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.round = this.readAll()
        .catch((e: unknown) => this.deps.log.error({ err: e }, "temperature round failed"))
        .finally(() => {
          if (this.running) this.schedule(this.deps.intervalMs);
        });
    }, ms);
    this.timer.unref();
  }

  private async readAll(): Promise<void> {
    for (const [compartment, bounds] of this.deps.sensors) {
      if (!this.running) return;
      let reading: TemperatureReading;
      try {
        reading = await within(bounds.sensor.read(), READ_TIMEOUT_MS, bounds.sensor.name);
        if (!Number.isFinite(reading.celsius)) {
          throw new LockerError(ErrorCode.HardwareUnavailable, `${bounds.sensor.name}: reading ${reading.celsius}`);
        }
      } catch (e) {
        if (this.running) this.failed(compartment, bounds.sensor, e);
        continue;
      }
      if (this.running) this.measured(compartment, bounds, reading);
    }
  }

  private failed(compartment: string, sensor: TemperatureSensor, e: unknown): void {
    const s = this.stateOf(compartment);
    s.failures++;
    s.last = { compartment, celsius: null, humidity: null, at: Date.now(), ok: false };
    // On change only: the first failed read is news, the next ones (every temperatureReadS) are not.
    if (s.failures === 1) this.deps.log.warn({ err: e, compartment, sensor: sensor.name }, "temperature read failed; retrying every round");
    else this.deps.log.debug({ err: e, compartment, sensor: sensor.name, failures: s.failures }, "temperature read failed again");
    if (s.failures >= FAULT_AFTER_FAILURES && !s.faulted) {
      const error = e instanceof Error ? e.message : String(e);
      s.faulted = this.raise(compartment, "alarm.sensor_fault", { sensor: sensor.name, error });
    }
  }

  private measured(compartment: string, { minC, maxC }: TemperatureBounds, reading: TemperatureReading): void {
    const s = this.stateOf(compartment);
    const celsius = round2(reading.celsius);
    const humidity = reading.humidity === null ? null : round2(reading.humidity);
    if (s.failures > 0) this.deps.log.info({ compartment, celsius, failedReads: s.failures }, "temperature read again");
    s.failures = 0;
    s.last = { compartment, celsius, humidity, at: Date.now(), ok: true };
    if (s.faulted) s.faulted = !this.clear(compartment, { alarm: "sensor_fault" });
    if (!s.tooWarmOrCold) {
      if (celsius < minC || celsius > maxC) {
        this.deps.log.warn({ compartment, celsius, minC, maxC }, "temperature out of bounds");
        s.tooWarmOrCold = this.raise(compartment, "alarm.temperature", { celsius, minC, maxC });
      }
    } else if (celsius > minC + HYSTERESIS_C && celsius < maxC - HYSTERESIS_C) {
      s.tooWarmOrCold = !this.clear(compartment, { alarm: "temperature", celsius });
    }
  }

  private stateOf(compartment: string): SensorState {
    const s = this.state.get(compartment);
    if (!s) throw new LockerError(ErrorCode.Internal, `no temperature state for ${compartment}`);
    return s;
  }

  /** True once the event is committed; false (logged) leaves the alarm to be raised on the next read. */
  private raise(compartment: string, type: "alarm.temperature" | "alarm.sensor_fault", data: Record<string, unknown>): boolean {
    return this.record(type, (tx) => tx.event({ type, compartment, data }));
  }

  private clear(compartment: string, data: { alarm: TemperatureAlarm; celsius?: number }): boolean {
    return this.record("alarm.cleared", (tx) => tx.event({ type: "alarm.cleared", compartment, data }));
  }

  private record(what: string, fn: (tx: LedgerTx) => void): boolean {
    try {
      this.deps.ledger.transact(fn);
      return true;
    } catch (e) {
      this.deps.log.error({ err: e }, `${what} not recorded`);
      return false;
    }
  }

  /** Alarms whose last raise is newer than their last clear stay raised across a restart. */
  private restoreOpenAlarms(): void {
    try {
      const rows = this.deps.ledger.db
        .prepare(
          `SELECT compartment,
                  max(CASE WHEN type = 'alarm.temperature' THEN seq END) AS tRaised,
                  max(CASE WHEN type = 'alarm.cleared' AND json_extract(data, '$.alarm') = 'temperature' THEN seq END) AS tCleared,
                  max(CASE WHEN type = 'alarm.sensor_fault' THEN seq END) AS fRaised,
                  max(CASE WHEN type = 'alarm.cleared' AND json_extract(data, '$.alarm') = 'sensor_fault' THEN seq END) AS fCleared
           FROM events WHERE ${EVENTS_ALARMS} AND compartment IS NOT NULL
           GROUP BY compartment`,
        )
        .all() as OpenAlarmRow[];
      for (const r of rows) {
        const s = this.state.get(r.compartment);
        if (!s) continue;
        s.tooWarmOrCold = (r.tRaised ?? 0) > (r.tCleared ?? 0);
        s.faulted = (r.fRaised ?? 0) > (r.fCleared ?? 0);
      }
    } catch (e) {
      this.deps.log.error({ err: e }, "open temperature alarms not restored");
    }
  }
}

/** `p`, or a HardwareTimeout rejection after `ms`. */
function within<T>(p: Promise<T>, ms: number, sensor: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LockerError(ErrorCode.HardwareTimeout, `${sensor}: no answer within ${ms} ms`, { sensor })), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
