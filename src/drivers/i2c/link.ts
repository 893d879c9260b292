// One I2C device's link: transactions one at a time, bus errors retried with backoff, then the
// device is marked faulted and probed (re-initialized) with a growing backoff until it answers.
//
//   run(op) ──EIO/ENXIO/EREMOTEIO──▶ retry ×retries (10 ms … 200 ms) ──still failing──▶ faulted
//     faulted: run() rejects at once; "fault" emitted; probe: init() after 1 s, 2 s … 30 s
//     probe answers ──▶ ok, "recovered" emitted, onRecovered()
import { EventEmitter } from "node:events";
import { Backoff, type BackoffOptions } from "../../backoff.js";
import { ErrorCode, LockerError, isLockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import { Sleeper, describeError, errnoCode } from "../gpio/common.js";
import { isBusError, type I2cBus, type I2cBusOpener } from "./bus.js";

/** What a board part emits so the runtime can write an event (and lockerctl can show it). */
export interface DeviceEvents {
  fault: [detail: string];
  recovered: [];
}

export type LinkState = "stopped" | "ok" | "faulted";

export interface I2cLinkOptions {
  /** e.g. "mcp23017 i2c-1@0x20" */
  name: string;
  busNumber: number;
  /** Bus errors retried before the device counts as faulted. */
  retries: number;
  log: Logger;
  openBus: I2cBusOpener;
  /** Configures the device from scratch: at start and on every probe (it may have lost power). */
  init: (bus: I2cBus) => Promise<void>;
  /** After a probe brought the device back (e.g. read the inputs again). */
  onRecovered?: () => void;
  random?: () => number;
  retryBackoff?: Omit<BackoffOptions, "random">;
  probeBackoff?: Omit<BackoffOptions, "random">;
}

export const RETRY_BACKOFF = { baseMs: 10, capMs: 200 };
export const PROBE_BACKOFF = { baseMs: 1000, capMs: 30_000 };

export class I2cLink extends EventEmitter<DeviceEvents> {
  state: LinkState = "stopped";
  detail = "not started";
  private bus: I2cBus | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly probeBackoff: Backoff;
  private readonly sleeper = new Sleeper();

  constructor(private readonly opts: I2cLinkOptions) {
    super();
    this.probeBackoff = new Backoff({ ...(opts.probeBackoff ?? PROBE_BACKOFF), random: opts.random });
  }

  /** Opens the bus and initializes the device. A device that does not answer is not an error here:
   *  the link reports itself faulted and keeps probing. A missing or forbidden /dev/i2c-N throws. */
  async start(): Promise<void> {
    this.bus = await this.opts.openBus(this.opts.busNumber);
    this.state = "ok";
    this.detail = "starting";
    try {
      await this.run("init", (bus) => this.opts.init(bus));
      this.detail = "answering";
    } catch (e) {
      if ((this.state as LinkState) === "faulted") return; // not answering: probing from now on
      await this.stop(); // not a bus error: a bug or a config problem
      throw e;
    }
  }

  /** One operation, exclusive on this device, bus errors retried. Rejects at once while faulted. */
  run<T>(what: string, op: (bus: I2cBus) => Promise<T>): Promise<T> {
    if (this.state !== "ok") return Promise.reject(this.unavailable(what));
    return this.exclusive(async () => {
      const retry = new Backoff({ ...(this.opts.retryBackoff ?? RETRY_BACKOFF), random: this.opts.random });
      for (;;) {
        if (this.state !== "ok" || !this.bus) throw this.unavailable(what);
        try {
          return await op(this.bus);
        } catch (e) {
          if (!isBusError(e)) throw isLockerError(e) ? e : new LockerError(ErrorCode.Internal, `${this.opts.name} ${what}: ${describeError(e)}`);
          if (retry.failures >= this.opts.retries) {
            this.fault(`${what}: ${errnoCode(e)} after ${retry.failures + 1} tries`, e);
            throw this.unavailable(what, errnoCode(e));
          }
          this.opts.log.debug({ what, code: errnoCode(e), attempt: retry.failures + 1 }, "bus error, retrying");
          await this.sleeper.sleep(retry.next());
        }
      }
    });
  }

  /** Best effort whatever the state (relays off at fault and stop): one try, errors swallowed. */
  async force(what: string, op: (bus: I2cBus) => Promise<void>): Promise<boolean> {
    const bus = this.bus;
    if (!bus) return false;
    return this.exclusive(() => op(bus)).then(
      () => true,
      (e: unknown) => {
        this.opts.log.debug({ what, err: e }, "best-effort write failed");
        return false;
      },
    );
  }

  async stop(): Promise<void> {
    this.state = "stopped";
    this.detail = "stopped";
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    this.sleeper.wakeAll();
    await this.queue.catch(() => undefined);
    const bus = this.bus;
    this.bus = null;
    await bus?.close().catch(() => undefined);
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const next = this.queue.then(task, task);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private unavailable(what: string, code?: string): LockerError {
    const why = this.state === "stopped" ? "is not started" : `is not answering (${this.detail})`;
    return new LockerError(ErrorCode.HardwareUnavailable, `${this.opts.name} ${why}`, { device: this.opts.name, what, ...(code ? { code } : {}) });
  }

  private fault(detail: string, e: unknown): void {
    if (this.state !== "ok") return;
    this.state = "faulted";
    this.detail = detail;
    this.opts.log.warn({ device: this.opts.name, code: errnoCode(e), detail }, "i2c device not answering: faulted, probing with backoff");
    this.emit("fault", detail);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    const delay = this.probeBackoff.next();
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      void this.probe();
    }, delay);
  }

  private async probe(): Promise<void> {
    const bus = this.bus;
    if (this.state !== "faulted" || !bus) return;
    try {
      await this.exclusive(() => this.opts.init(bus));
    } catch (e) {
      if (this.state !== "faulted") return;
      this.detail = `probe ${this.probeBackoff.failures}: ${errnoCode(e) ?? describeError(e)}`;
      this.scheduleProbe();
      return;
    }
    if (this.state !== "faulted") return;
    this.state = "ok";
    this.detail = "answering again";
    this.probeBackoff.reset();
    this.opts.log.info({ device: this.opts.name }, "i2c device answering again: recovered");
    this.emit("recovered");
    this.opts.onRecovered?.();
  }
}
