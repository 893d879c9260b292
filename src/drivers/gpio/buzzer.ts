// A buzzer and/or an indicator LED on GPIO pins, sounding short on/off patterns. A new pattern
// cuts the current one short; stop() always leaves both off. Faults are logged, never thrown; a
// chardev helper that died leaves the buzzer `degraded` and silent until it is back. A buzzer that
// cannot start at all is skipped by RealHardware (it is optional).
import type { Logger } from "../../log.js";
import type { BuzzerPart } from "../parts.js";
import type { BuzzerPattern, DeviceHealth } from "../types.js";
import { Sleeper, describeError } from "./common.js";
import type { GpioLine, Level } from "./line.js";
import type { GpioDeps } from "./relays.js";
import { GpioBuzzerConfig } from "./config.js";
import { GpioPins } from "./sysfs.js";

export { GpioBuzzerConfig };

/** Durations in ms, alternating on, off, on...; odd length, so every pattern ends on an "on" step
 *  that is followed by off. The LED blinks along with the buzzer. */
export const BUZZER_PATTERNS: Readonly<Record<BuzzerPattern, readonly number[]>> = {
  key: [30],
  ok: [120],
  error: [250, 100, 250],
  alarm: [400, 200, 400, 200, 400, 200, 400],
};

interface Output {
  pin: number;
  on: Level;
  off: Level;
  line: GpioLine | null;
}

class GpioBuzzer implements BuzzerPart {
  readonly name: string;
  private readonly outputs: Output[] = [];
  private readonly log: Logger;
  private readonly sleeper = new Sleeper();
  private pins: GpioPins | null = null;
  /** Bumped by every sound() and by stop(): a pattern that is no longer current stops writing. */
  private generation = 0;
  /** Line writes in order (onoff writes through the thread pool, which does not keep order). */
  private writes: Promise<void> = Promise.resolve();
  /** A chardev helper is down: patterns are skipped until it is back. */
  private helperDown = false;
  private state: DeviceHealth["health"] = "absent";
  private detail = "not started";

  constructor(
    private readonly config: GpioBuzzerConfig,
    private readonly deps: GpioDeps,
  ) {
    for (const o of [config.buzzer, config.led]) {
      if (o) this.outputs.push({ pin: o.pin, on: o.activeLow ? 0 : 1, off: o.activeLow ? 1 : 0, line: null });
    }
    this.name = `gpio buzzer (GPIO ${this.outputs.map((o) => o.pin).join(",")})`;
    this.log = deps.log.child({ module: "gpio-buzzer" });
  }

  health(): DeviceHealth {
    return { name: this.name, kind: "buzzer", health: this.state, detail: this.detail };
  }

  async start(): Promise<void> {
    const pins = await GpioPins.attach(this.config, this.deps.gpio, { gpiod: this.deps.gpiod, log: this.log });
    try {
      const lines = await pins.lines(this.outputs.map((o) => ({ pin: o.pin, direction: o.off === 1 ? ("high" as const) : ("low" as const) })));
      this.outputs.forEach((o, i) => (o.line = lines[i]!));
    } catch (e) {
      await pins.release();
      for (const o of this.outputs) o.line = null;
      throw e;
    }
    pins.on("fault", (detail) => {
      this.helperDown = true;
      this.state = "degraded";
      this.detail = detail;
      this.log.warn({ detail }, "buzzer/led silent until its gpio helper is back");
    });
    pins.on("recovered", () => {
      this.helperDown = false;
      this.state = "ok";
      this.detail = pins.describe();
    });
    this.pins = pins;
    this.state = "ok";
    this.detail = pins.describe();
  }

  sound(pattern: BuzzerPattern): void {
    if (!this.pins || this.helperDown) return;
    const generation = ++this.generation;
    this.sleeper.wakeAll();
    void this.play(generation, BUZZER_PATTERNS[pattern]);
  }

  async stop(): Promise<void> {
    this.generation++;
    this.sleeper.wakeAll();
    await this.set(false);
    const pins = this.pins;
    this.pins = null;
    pins?.removeAllListeners();
    await pins?.release();
    for (const o of this.outputs) o.line = null;
    this.helperDown = false;
    this.state = "absent";
    this.detail = "stopped";
  }

  private async play(generation: number, steps: readonly number[]): Promise<void> {
    for (const [i, ms] of steps.entries()) {
      if (generation !== this.generation) return;
      await this.set(i % 2 === 0);
      await this.sleeper.sleep(ms);
    }
    if (generation === this.generation) await this.set(false);
  }

  private set(on: boolean): Promise<void> {
    const lines = this.outputs.flatMap((o) => (o.line ? [{ o, line: o.line }] : []));
    this.writes = this.writes.then(async () => {
      for (const { o, line } of lines) {
        try {
          await line.write(on ? o.on : o.off);
        } catch (e) {
          if (this.helperDown) continue; // reported once, as the helper's fault
          this.state = "degraded";
          this.detail = `GPIO ${o.pin}: ${describeError(e)}`;
          this.log.warn({ pin: o.pin, err: e }, "buzzer/led write failed");
        }
      }
    });
    return this.writes;
  }
}

export function createGpioBuzzer(config: GpioBuzzerConfig, deps: GpioDeps): BuzzerPart {
  return new GpioBuzzer(config, deps);
}
