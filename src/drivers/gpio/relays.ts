// Relays on the Pi's own GPIO pins: one pin per lock channel, active-high or active-low per relay.
// Outputs are opened at their "off" level (direction "high"/"low" sets it with the direction, so
// a relay never clicks at start), and driven off again at stop before they are released. On the
// character device (sysfs.ts, chardev.ts) a helper that dies faults the part (`availability`
// fault: its locks are neither offered nor opened) until it is back, every relay off again.
import { EventEmitter } from "node:events";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { AvailabilityEvents, LockPart } from "../parts.js";
import type { DeviceHealth } from "../types.js";
import { PerKeyQueue, Sleeper, describeError, errnoCode } from "./common.js";
import type { GpiodOptions } from "./gpiod.js";
import type { GpioLine, GpioLineOpener, Level } from "./line.js";
import { GpioRelaysConfig, uniqueBy } from "./config.js";
import { GpioPins } from "./sysfs.js";

export { GpioRelaysConfig, uniqueBy };

export interface GpioDeps {
  log: Logger;
  /** The sysfs line opener; default onoff (real /sys). Tests and the simulator pass a GpioEmulator. */
  gpio?: GpioLineOpener;
  /** How the gpiod tools run for the chardev backend (tests: fake tools on PATH). */
  gpiod?: GpiodOptions;
}

interface Relay {
  pin: number;
  on: Level;
  off: Level;
  line: GpioLine | null;
}

class GpioRelays implements LockPart {
  readonly name: string;
  readonly availability = new EventEmitter<AvailabilityEvents>();
  readonly channels: readonly number[];
  private readonly relays = new Map<number, Relay>();
  private readonly log: Logger;
  private readonly sleeper = new Sleeper();
  private readonly queue = new PerKeyQueue<number>();
  private pins: GpioPins | null = null;
  private state: DeviceHealth["health"] = "absent";
  private detail = "not started";

  constructor(
    private readonly config: GpioRelaysConfig,
    private readonly deps: GpioDeps,
  ) {
    this.name = `gpio relays (GPIO ${config.relays.map((r) => r.pin).join(",")})`;
    this.channels = config.relays.map((r) => r.channel);
    for (const r of config.relays) {
      const activeLow = r.activeLow ?? config.activeLow;
      this.relays.set(r.channel, { pin: r.pin, on: activeLow ? 0 : 1, off: activeLow ? 1 : 0, line: null });
    }
    this.log = deps.log.child({ module: "gpio-relays" });
  }

  health(): DeviceHealth {
    return { name: this.name, kind: "locks", health: this.state, detail: this.detail };
  }

  async start(): Promise<void> {
    const pins = await GpioPins.attach(this.config, this.deps.gpio, { gpiod: this.deps.gpiod, log: this.log });
    const relays = [...this.relays.values()];
    try {
      const lines = await pins.lines(relays.map((r) => ({ pin: r.pin, direction: r.off === 1 ? ("high" as const) : ("low" as const) })));
      relays.forEach((r, i) => (r.line = lines[i]!));
    } catch (e) {
      await pins.release();
      for (const r of relays) r.line = null;
      throw e;
    }
    pins.on("fault", (detail) => {
      this.state = "faulted";
      this.detail = detail;
      this.availability.emit("fault", detail);
    });
    pins.on("recovered", () => {
      this.state = "ok";
      this.detail = `${this.relays.size} relays on ${pins.describe()}`;
      this.availability.emit("recovered");
    });
    this.pins = pins;
    this.state = "ok";
    this.detail = `${this.relays.size} relays on ${pins.describe()}`;
    this.log.info({ chip: pins.chip, backend: pins.backend }, "gpio relays ready, all off");
  }

  pulse(channel: number, ms: number): Promise<void> {
    const relay = this.relays.get(channel);
    if (!relay) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `no relay for lock channel ${channel} on ${this.name}`, { channel }));
    return this.queue.run(channel, async () => {
      const line = this.liveLine(relay, channel);
      try {
        await this.write(relay, line, relay.on, channel);
      } catch (e) {
        // the coil may be on (a command that was sent, not acknowledged): off again, best effort
        if (this.pins) await this.write(relay, line, relay.off, channel).catch(() => undefined);
        throw e;
      }
      try {
        await this.sleeper.sleep(ms);
      } finally {
        // stop() drove every relay off and released the lines while we slept
        if (this.pins) await this.write(relay, line, relay.off, channel);
      }
    });
  }

  async allOff(): Promise<void> {
    for (const [channel, r] of this.relays) {
      if (r.line) await this.write(r, r.line, r.off, channel).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    await this.allOff();
    const pins = this.pins;
    this.pins = null;
    pins?.removeAllListeners();
    await pins?.release();
    for (const r of this.relays.values()) r.line = null;
    this.sleeper.wakeAll();
    this.state = "absent";
    this.detail = "stopped";
  }

  private liveLine(relay: Relay, channel: number): GpioLine {
    if (!relay.line) throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name} is not started`, { channel });
    return relay.line;
  }

  private async write(relay: Relay, line: GpioLine, level: Level, channel: number): Promise<void> {
    try {
      await line.write(level);
      if (this.state === "faulted") {
        this.state = "ok";
        this.detail = `${this.relays.size} relays, writing again`;
      }
    } catch (e) {
      // ENODEV: the chardev helper is down, already reported as the part's fault
      if (errnoCode(e) !== "ENODEV") {
        this.state = "faulted";
        this.detail = `GPIO ${relay.pin}: ${describeError(e)}`;
      }
      this.log.error({ channel, pin: relay.pin, err: e }, "gpio relay write failed");
      // ETIMEDOUT: sent to the helper, never acknowledged: the lock may have moved
      const code = errnoCode(e) === "ETIMEDOUT" ? ErrorCode.HardwareTimeout : ErrorCode.HardwareUnavailable;
      throw new LockerError(code, `${this.name}: cannot drive GPIO ${relay.pin}: ${describeError(e)}`, { channel });
    }
  }
}

export function createGpioRelays(config: GpioRelaysConfig, deps: GpioDeps): LockPart {
  return new GpioRelays(config, deps);
}
