// A 16x2 or 20x4 HD44780 LCD on a PCF8574 I2C backpack. show() never throws and never waits: it
// records what should be on screen and a writer brings the display there, rewriting only the
// changed span of each changed row. When the backpack stops answering the display is "degraded";
// the link keeps probing, and a recovered display is re-initialized and fully redrawn.
import { EventEmitter } from "node:events";
import type { Logger } from "../../log.js";
import { Sleeper } from "../gpio/common.js";
import { deviceName, openI2cBus, type I2cBus } from "../i2c/bus.js";
import type { I2cDeps } from "../i2c/expander.js";
import { I2cLink, type DeviceEvents } from "../i2c/link.js";
import type { DisplayPart } from "../parts.js";
import type { DeviceHealth } from "../types.js";
import { LcdConfig } from "./config.js";
import { BackpackCodec, CLEAR_WAIT_MS, INIT_COMMANDS, INIT_NIBBLES, LCD, fitLine, rowOffsets } from "./hd44780.js";

/** Power-on: wait > 40 ms after VCC rises before the first instruction (Figure 24). */
export const POWER_ON_WAIT_MS = 50;

export { LcdConfig };

export type LcdPart = DisplayPart & EventEmitter<DeviceEvents>;

class Hd44780Lcd extends EventEmitter<DeviceEvents> implements DisplayPart {
  readonly name: string;
  private readonly codec: BackpackCodec;
  private readonly link: I2cLink;
  private readonly sleeper = new Sleeper();
  private readonly offsets: number[];
  private desired: string[];
  /** What the display shows, as far as we know; null = unknown (after a fault). */
  private shown: string[] | null = null;
  private writing: Promise<void> | null = null;
  private writeAgain = false;

  constructor(
    private readonly config: LcdConfig,
    deps: I2cDeps,
  ) {
    super();
    this.name = deviceName(`lcd ${config.cols}x${config.rows}`, config.bus, config.address);
    this.codec = new BackpackCodec(config.pins, config.backlight);
    this.offsets = rowOffsets(config.cols);
    this.desired = this.blank();
    const log: Logger = deps.log.child({ module: "lcd", device: this.name });
    this.link = new I2cLink({
      name: this.name,
      busNumber: config.bus,
      retries: config.retries,
      log,
      openBus: deps.openBus ?? openI2cBus,
      random: deps.random,
      init: (bus) => this.initialize(bus),
      onRecovered: () => void this.flush(),
    });
    this.link.on("fault", (detail) => {
      this.shown = null;
      this.emit("fault", detail);
    });
    this.link.on("recovered", () => this.emit("recovered"));
  }

  health(): DeviceHealth {
    const state = this.link.state;
    return {
      name: this.name,
      kind: "display",
      health: state === "ok" ? "ok" : state === "faulted" ? "degraded" : "absent",
      detail: this.link.detail,
    };
  }

  async start(): Promise<void> {
    await this.link.start();
    await this.flush();
  }

  async stop(): Promise<void> {
    this.sleeper.wakeAll();
    await this.link.stop();
  }

  show(lines: readonly string[]): void {
    this.desired = Array.from({ length: this.config.rows }, (_, r) => fitLine(lines[r] ?? "", this.config.cols));
    void this.flush();
  }

  /** What the driver believes is on screen (null when unknown). */
  get screen(): readonly string[] | null {
    return this.shown;
  }

  private blank(): string[] {
    return Array.from({ length: this.config.rows }, () => " ".repeat(this.config.cols));
  }

  private async initialize(bus: I2cBus): Promise<void> {
    const a = this.config.address;
    const send = (bytes: number[]) => bus.i2cWrite(a, bytes.length, Buffer.from(bytes));
    await this.sleeper.sleep(POWER_ON_WAIT_MS);
    for (const { nibble, waitMs } of INIT_NIBBLES) {
      await send(this.codec.nibble(nibble, false));
      await this.sleeper.sleep(waitMs);
    }
    for (const command of INIT_COMMANDS) {
      await send(this.codec.command(command));
      if (command === LCD.CLEAR) await this.sleeper.sleep(CLEAR_WAIT_MS);
    }
    this.shown = this.blank();
  }

  /** Bring the display to `desired`; one writer at a time, a request meanwhile runs it once more. */
  private flush(): Promise<void> {
    if (this.writing) {
      this.writeAgain = true;
      return this.writing;
    }
    this.writing = (async () => {
      do {
        this.writeAgain = false;
        if (this.link.state !== "ok") break;
        try {
          await this.writeChanges();
        } catch {
          // the link logged it, marked the display degraded and keeps probing
          break;
        }
      } while (this.writeAgain);
    })().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  private async writeChanges(): Promise<void> {
    for (let row = 0; row < this.config.rows; row++) {
      const want = this.desired[row] ?? "";
      const have = this.shown?.[row];
      if (have === want) continue;
      // the changed span: from the first to the last differing column
      let first = 0;
      let last = want.length - 1;
      if (have !== undefined) {
        while (first < want.length && want[first] === have[first]) first++;
        while (last > first && want[last] === have[last]) last--;
      }
      const bytes = this.codec.text((this.offsets[row] ?? 0) + first, want.slice(first, last + 1));
      await this.link.run("write row", (bus) => bus.i2cWrite(this.config.address, bytes.length, Buffer.from(bytes)));
      if (this.shown) this.shown[row] = want;
    }
  }
}

export function createLcd(config: LcdConfig, deps: I2cDeps): LcdPart {
  return new Hd44780Lcd(config, deps);
}
