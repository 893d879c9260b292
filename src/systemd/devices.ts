// Which device nodes a bank's hardware uses, read from its config: the DeviceAllow= drop-in that
// scripts/install-pi.sh writes next to systemd/lockerd.service (DevicePolicy=closed there), and what
// the host must enable (I2C, the header UART). Nothing else is opened by lockerd:
//
//   I2C expanders, the LCD, SHT3x   /dev/i2c-<bus>        path (fixed node; group i2c)
//   a reader or board on the header /dev/serial0 (the     path (systemd resolves the symlink when the
//   UART                            header UART on every  unit starts; group dialout); ttyAMA0 / ttyS0
//                                   Pi), ttyAMA0, ttyS0   also taken as given
//   a USB serial adapter            /dev/ttyUSBn, ttyACMn class char-ttyUSB / char-ttyACM: the node
//   (RS485, USB keypad/scanner)     or a udev symlink      changes with plug order and re-plugging
//   USB HID readers                 /dev/hidrawN          class char-hidraw (same reason; group lockerd)
//   GPIO relays, doors, buzzer, LED /sys/class/gpio, or   sysfs needs no node; the character device
//                                   /dev/gpiochipN        by class char-gpiochip (N differs by board)
//
// Usage (what the installer runs):
//   node dist/src/systemd/devices.js CONFIG           the drop-in, on stdout
//   node dist/src/systemd/devices.js --needs CONFIG   one line: i2c uart gpio usb-serial hidraw (those used)
import { readFileSync, realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { RealProfile } from "../drivers/real/profile.js";

export interface DeviceNeeds {
  /** DeviceAllow= values, each "<node or class> rw", sorted. */
  allow: string[];
  i2cBuses: number[];
  /** A port on the Pi's own UART (raspi-config: serial hardware on, login console off). */
  uart: boolean;
  gpio: boolean;
  usbSerial: boolean;
  hidraw: boolean;
}

const UART = /^\/dev\/(ttyAMA\d+|ttyS\d+|serial\d)$/;

/** The device nodes the config's `hardware` section uses. Throws on a `hardware` that is not valid. */
export function deviceNeeds(config: unknown): DeviceNeeds {
  const hardware = (config as { hardware?: { profile?: unknown } } | null)?.hardware;
  const needs: DeviceNeeds = { allow: [], i2cBuses: [], uart: false, gpio: false, usbSerial: false, hidraw: false };
  if (hardware?.profile !== "real") return needs; // the simulated bank opens no device
  const parsed = RealProfile.safeParse(hardware);
  if (!parsed.success) throw new Error(`hardware is not a valid real profile: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const p = parsed.data;
  const allow = new Set<string>();
  const buses = new Set<number>();
  const serial = (port: string) => {
    if (UART.test(port)) {
      needs.uart = true;
      allow.add(`${port} rw`);
      return;
    }
    needs.usbSerial = true;
    if (/^\/dev\/ttyUSB\d+$/.test(port)) allow.add("char-ttyUSB rw");
    else if (/^\/dev\/ttyACM\d+$/.test(port)) allow.add("char-ttyACM rw");
    else {
      // A udev symlink or /dev/serial/by-id/...: a USB adapter, FTDI/CH340 (ttyUSB) or CDC (ttyACM).
      allow.add("char-ttyUSB rw");
      allow.add("char-ttyACM rw");
    }
  };
  for (const b of p.boards) {
    switch (b.type) {
      case "gpio-relays":
      case "gpio-doors":
        needs.gpio = true;
        break;
      case "mcp23017":
      case "pcf8574":
      case "pca9534":
        buses.add(b.bus);
        if ("interrupt" in b && b.interrupt) needs.gpio = true;
        break;
      case "kerong":
      case "cu8a":
        serial(b.port);
        break;
    }
  }
  for (const r of p.readers) {
    if (r.type === "hid") {
      needs.hidraw = true;
      allow.add("char-hidraw rw");
    } else serial(r.port);
  }
  if (p.display) buses.add(p.display.bus);
  for (const t of p.thermometers) buses.add(t.bus);
  if (p.buzzer) needs.gpio = true;
  // Where sysfs GPIO is gone (Trixie, any Pi 5), lines are driven through /dev/gpiochipN; which N
  // carries the header differs by board and kernel (Pi 4: 0; Pi 5: 4 or 0), hence the class.
  if (needs.gpio) allow.add("char-gpiochip rw");
  for (const bus of buses) allow.add(`/dev/i2c-${bus} rw`);
  needs.i2cBuses = [...buses].sort((a, b) => a - b);
  needs.allow = [...allow].sort();
  return needs;
}

/** The words the installer acts on. */
export function needsLine(n: DeviceNeeds): string {
  return [n.i2cBuses.length ? "i2c" : "", n.uart ? "uart" : "", n.gpio ? "gpio" : "", n.usbSerial ? "usb-serial" : "", n.hidraw ? "hidraw" : ""].filter(Boolean).join(" ");
}

/** The drop-in /etc/systemd/system/lockerd.service.d/10-devices.conf. */
export function dropIn(n: DeviceNeeds, configPath: string): string {
  const lines = [
    `# Written by scripts/install-pi.sh from ${configPath} (src/systemd/devices.ts): the device nodes`,
    "# this bank's hardware opens, and no others (lockerd.service has DevicePolicy=closed).",
    "# Changed the hardware in the config? Run `sudo scripts/install-pi.sh --devices` (rewrites this",
    "# file, reloads systemd, restarts lockerd).",
    "[Service]",
    "DeviceAllow=",
    ...n.allow.map((a) => `DeviceAllow=${a}`),
  ];
  if (n.gpio) lines.push("# GPIO (relays, door switches, buzzer, LED, expander interrupts) goes through sysfs", "# (/sys/class/gpio), not a device node: nothing to allow here.");
  if (!n.allow.length && !n.gpio) lines.push("# No device: a simulated bank.");
  return `${lines.join("\n")}\n`;
}

function main(argv: string[]): number {
  const needsOnly = argv[0] === "--needs";
  const file = needsOnly ? argv[1] : argv[0];
  if (!file || argv.length > (needsOnly ? 2 : 1)) {
    process.stderr.write("usage: devices.js [--needs] CONFIG\n");
    return 64;
  }
  let needs: DeviceNeeds;
  try {
    needs = deviceNeeds(JSON.parse(readFileSync(file, "utf8")));
  } catch (e) {
    process.stderr.write(`devices.js: ${file}: ${(e as Error).message}\n`);
    return 78;
  }
  process.stdout.write(needsOnly ? `${needsLine(needs)}\n` : dropIn(needs, file));
  return 0;
}

const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(realpathSync(entry)).href) process.exitCode = main(process.argv.slice(2));
