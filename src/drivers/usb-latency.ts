// The latency timer of an FTDI USB-serial adapter (Linux ftdi_sio). The chip hands received bytes
// to the host only when 62 have gathered or the timer runs out, 16 ms by default: a board's short
// answer then reaches lockerd up to 16 ms after it left the wire, and everything queued on the bus
// waits for it. The driver shows the timer as a sysfs attribute of the tty; other chips (CH340,
// CP210x) and pseudo-terminals have none.
import { readFileSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";

/**
 * The latency timer in ms of the adapter behind `portPath`, or null when there is none to read
 * (not an FTDI adapter, no such port, no sysfs, unreadable). The config names the port by a
 * symbolic link (/dev/rs485-locks, /dev/serial/by-id/...): sysfs knows it by its kernel name
 * (ttyUSB0). Never throws.
 */
export function latencyTimerMs(portPath: string, sysfsRoot = "/sys"): number | null {
  try {
    const name = basename(realpathSync(portPath));
    const text = readFileSync(join(sysfsRoot, "class/tty", name, "device/latency_timer"), "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}
