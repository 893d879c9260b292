// SHT3x temperature/humidity sensor on I2C (Sensirion SHT3x-DIS). One single-shot measurement per
// read(): write the command, wait out tMEAS, read the six answer bytes, decode with the codec in
// ../temperature.ts (CRC-checked). Bus errors and bad answers reject with a LockerError.
import { ErrorCode, LockerError, isLockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { Sleeper, describeError, errnoCode } from "../gpio/common.js";
import type { Part } from "../parts.js";
import { SHT3X_ANSWER_BYTES, decodeSht3x, sht3xMeasureCommand, type TemperatureReading, type TemperatureSensor } from "../temperature.js";
import type { DeviceHealth } from "../types.js";
import { deviceName, isBusError, openI2cBus, type I2cBus } from "./bus.js";
import type { I2cDeps } from "./expander.js";
import { Sht3xConfig } from "./config.js";

export { Sht3xConfig };

/** tMEAS at high repeatability is 15 ms at most (datasheet Table 4); one more for the timer. */
export const SHT3X_WAIT_MS = 16;

export type Sht3xPart = TemperatureSensor & Part & { readonly compartment: string };

class Sht3xSensor implements Sht3xPart {
  readonly name: string;
  readonly compartment: string;
  private readonly log: Logger;
  private readonly sleeper = new Sleeper();
  private bus: I2cBus | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private state: DeviceHealth["health"] = "absent";
  private detail = "not started";

  constructor(
    private readonly config: Sht3xConfig,
    private readonly deps: I2cDeps,
  ) {
    this.name = deviceName("sht3x", config.bus, config.address);
    this.compartment = config.compartment;
    this.log = deps.log.child({ module: "sht3x", device: this.name });
  }

  health(): DeviceHealth {
    return { name: this.name, kind: "sensor", health: this.state, detail: `${this.compartment}: ${this.detail}` };
  }

  async start(): Promise<void> {
    this.bus = await (this.deps.openBus ?? openI2cBus)(this.config.bus);
    this.state = "ok";
    this.detail = "not read yet";
  }

  async stop(): Promise<void> {
    this.sleeper.wakeAll();
    const bus = this.bus;
    this.bus = null;
    await this.queue.catch(() => undefined);
    await bus?.close().catch(() => undefined);
    this.state = "absent";
    this.detail = "stopped";
  }

  read(): Promise<TemperatureReading> {
    const next = this.queue.then(() => this.measureWithRetries());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async measureWithRetries(): Promise<TemperatureReading> {
    for (let attempt = 0; ; attempt++) {
      try {
        const reading = await this.measure();
        if (this.state === "faulted") this.log.info({ sensor: this.name }, "sht3x answers again");
        this.state = "ok";
        this.detail = `${reading.celsius.toFixed(1)} °C`;
        return reading;
      } catch (e) {
        const retry = isBusError(e) && attempt < this.config.retries && this.bus !== null;
        if (retry) continue;
        // Logged when it starts failing, not at every read (one a minute, for as long as it lasts).
        if (this.state === "faulted") this.log.debug({ code: errnoCode(e) }, "sht3x read failed again");
        else this.log.warn({ code: errnoCode(e), err: e }, "sht3x read failed");
        this.state = "faulted";
        this.detail = isLockerError(e) ? e.message : `${errnoCode(e) ?? describeError(e)}`;
        if (isLockerError(e)) throw e;
        throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: no answer (${errnoCode(e) ?? describeError(e)})`, {
          sensor: this.name,
          code: errnoCode(e),
        });
      }
    }
  }

  private async measure(): Promise<TemperatureReading> {
    const bus = this.bus;
    if (!bus) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not started`, { sensor: this.name });
    const command = sht3xMeasureCommand();
    await bus.i2cWrite(this.config.address, command.length, command);
    await this.sleeper.sleep(SHT3X_WAIT_MS);
    const answer = Buffer.alloc(SHT3X_ANSWER_BYTES);
    const { bytesRead } = await bus.i2cRead(this.config.address, SHT3X_ANSWER_BYTES, answer);
    return decodeSht3x(answer.subarray(0, bytesRead));
  }
}

export function createSht3x(config: Sht3xConfig, deps: I2cDeps): Sht3xPart {
  return new Sht3xSensor(config, deps);
}
