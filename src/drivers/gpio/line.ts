// One GPIO line behind a tiny interface, modelled on onoff's Gpio: the relay, door and buzzer
// drivers speak only this. Production is onoff's Gpio (sysfs, /sys/class/gpio hard-coded); the
// tests and `npm start` on a laptop use the pin bank in ./emulator.ts.

export type Level = 0 | 1;
/** "high"/"low": an output that starts at that level, set atomically with the direction (no glitch). */
export type LineDirection = "in" | "high" | "low";
export type LineEdge = "none" | "rising" | "falling" | "both";
export type LineCallback = (err: Error | null | undefined, value: Level) => void;

export interface GpioLine {
  read(): Promise<Level>;
  write(value: Level): Promise<void>;
  /** Called on each enabled edge with the level read just after it. */
  watch(callback: LineCallback): void;
  unwatchAll(): void;
  /** Release the line (sysfs unexport). */
  unexport(): void;
}

export interface GpioLineOpener {
  /** Export and configure one line by its sysfs number (chip base + BCM pin). */
  open(sysfsNumber: number, direction: LineDirection, edge: LineEdge): Promise<GpioLine>;
}

/** onoff's Gpio. Loaded on first use, so a laptop without the epoll addon never needs it. */
export const onoffLines: GpioLineOpener = {
  async open(sysfsNumber, direction, edge) {
    const { Gpio } = await import("onoff");
    return direction === "in" ? new Gpio(sysfsNumber, direction, edge) : new Gpio(sysfsNumber, direction);
  },
};
