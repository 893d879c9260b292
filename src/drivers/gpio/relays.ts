// Relays on the Pi's own GPIO pins: one pin per lock channel, active-high or active-low per relay.
// Outputs are opened at their "off" level (direction "high"/"low" sets it with the direction, so
// a relay never clicks at start), and driven off again at stop before they are unexported.
import { z } from "zod";
import { ErrorCode, LockerError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { LockPart } from "../parts.js";
import type { DeviceHealth } from "../types.js";
import { LockChannel, PerKeyQueue, Sleeper, describeError } from "./common.js";
import type { GpioLine, GpioLineOpener, Level } from "./line.js";
import { BcmPin, GpioPins, gpioChipFields } from "./sysfs.js";

export const GpioRelaysConfig = z
  .strictObject({
    type: z.literal("gpio-relays"),
    ...gpioChipFields,
    activeLow: z.boolean().default(false).describe("relays energize when their pin is low (most opto-isolated boards)"),
    relays: z
      .array(
        z.strictObject({
          channel: LockChannel,
          pin: BcmPin.describe("BCM GPIO number"),
          activeLow: z.boolean().optional().describe("overrides the board's activeLow for this relay"),
        }),
      )
      .min(1)
      .max(28),
  })
  .superRefine((c, ctx) => {
    uniqueBy(c.relays, (r) => r.channel, "channel", ctx);
    uniqueBy(c.relays, (r) => r.pin, "pin", ctx);
  });
export type GpioRelaysConfig = z.infer<typeof GpioRelaysConfig>;

export interface GpioDeps {
  log: Logger;
  /** The line opener; default onoff (real /sys). Tests and the simulator pass a GpioEmulator. */
  gpio?: GpioLineOpener;
}

/** Adds an issue for each value of `key` seen twice (shared by the GPIO schemas). */
export function uniqueBy<T>(items: readonly T[], key: (t: T) => unknown, what: string, ctx: z.RefinementCtx): void {
  const seen = new Set<unknown>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) ctx.addIssue({ code: "custom", message: `${what} ${String(k)} is used twice` });
    seen.add(k);
  }
}

interface Relay {
  pin: number;
  on: Level;
  off: Level;
  line: GpioLine | null;
}

class GpioRelays implements LockPart {
  readonly name: string;
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
    const pins = await GpioPins.attach(this.config, this.deps.gpio);
    try {
      for (const r of this.relays.values()) r.line = await pins.line(r.pin, r.off === 1 ? "high" : "low");
    } catch (e) {
      pins.releaseAll();
      for (const r of this.relays.values()) r.line = null;
      throw e;
    }
    this.pins = pins;
    this.state = "ok";
    this.detail = `${this.relays.size} relays on ${pins.describe()}`;
    this.log.info({ chip: pins.chip }, "gpio relays ready, all off");
  }

  pulse(channel: number, ms: number): Promise<void> {
    const relay = this.relays.get(channel);
    if (!relay) return Promise.reject(new LockerError(ErrorCode.HardwareUnavailable, `no relay for lock channel ${channel} on ${this.name}`, { channel }));
    return this.queue.run(channel, async () => {
      const line = this.liveLine(relay, channel);
      await this.write(relay, line, relay.on, channel);
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
    this.pins?.releaseAll();
    this.pins = null;
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
      this.state = "faulted";
      this.detail = `GPIO ${relay.pin}: ${describeError(e)}`;
      this.log.error({ channel, pin: relay.pin, err: e }, "gpio relay write failed");
      throw new LockerError(ErrorCode.HardwareUnavailable, `${this.name}: cannot drive GPIO ${relay.pin}: ${describeError(e)}`, { channel });
    }
  }
}

export function createGpioRelays(config: GpioRelaysConfig, deps: GpioDeps): LockPart {
  return new GpioRelays(config, deps);
}
