// One GPIO line behind a tiny interface, modelled on onoff's Gpio: the relay, door and buzzer
// drivers speak only this. Two backends (GpioPins in sysfs.ts picks one):
//   sysfs    onoff's Gpio (/sys/class/gpio, hard-coded): Raspberry Pi OS Bookworm and older
//   chardev  /dev/gpiochipN through Debian's gpiod tools as long-lived helpers (chardev.ts):
//            Trixie and newer kernels, which have no /sys/class/gpio
// The tests and `npm start` on a laptop use the pin bank in ./emulator.ts (sysfs numbers) or fake
// gpiod tools on PATH (scripts/gpiod-emulator/).

export type Level = 0 | 1;
/** "high"/"low": an output that starts at that level, set atomically with the direction (no glitch). */
export type LineDirection = "in" | "high" | "low";
export type LineEdge = "none" | "rising" | "falling" | "both";
export type LineCallback = (err: Error | null | undefined, value: Level) => void;

/**
 * A line's read/write rejects with an Error carrying an errno `code`. Beyond the system's own
 * (EACCES, EIO...), the chardev backend uses two that say whether the level may have changed:
 *   ENODEV     the helper holding the line is down (restarting): nothing was written
 *   ETIMEDOUT  the command went to the helper and was never acknowledged: it may have been applied
 */
export interface GpioLine {
  read(): Promise<Level>;
  write(value: Level): Promise<void>;
  /** Called on each enabled edge with the level read just after it. */
  watch(callback: LineCallback): void;
  unwatchAll(): void;
  /** Release the line (sysfs unexport; chardev: GpioPins.release() ends the helpers). */
  unexport(): void;
}

/** One line to open: a BCM pin, its direction (outputs: their starting, safe level), its edges. */
export interface LineSpec {
  pin: number;
  direction: LineDirection;
  edge?: LineEdge;
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
