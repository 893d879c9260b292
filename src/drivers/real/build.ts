// Turns a "real" hardware profile (profile.ts) into parts and assembles them into RealHardware.
// Loaded by the runtime only for a real bank, so the simulated one never loads a board driver.
import type { Logger } from "../../log.js";
import { createGpioBuzzer } from "../gpio/buzzer.js";
import type { GpiodOptions } from "../gpio/gpiod.js";
import { createGpioDoors } from "../gpio/doors.js";
import { createGpioRelays } from "../gpio/relays.js";
import { createLcd } from "../display/lcd.js";
import { createMcp23017 } from "../i2c/mcp23017.js";
import { createPca9534 } from "../i2c/pca9534.js";
import { createPcf8574 } from "../i2c/pcf8574.js";
import { createSht3x, type Sht3xPart } from "../i2c/sht3x.js";
import type { DoorPart, InputPart, ItemPart, LockPart, Part } from "../parts.js";
import { createRs485Boards } from "../rs485/boards.js";
import { createReader } from "../readers/index.js";
import { FingerprintModule } from "../readers/fingerprint/module.js";
import { RealHardware } from "./hardware.js";
import type { RealProfile } from "./profile.js";

/** Build the parts of a real bank. Nothing is opened here: RealHardware.start() does that.
 *  `gpiod`: how the gpiod tools run for GPIO on the character device (tests: fake tools on PATH). */
export function buildRealHardware(profile: RealProfile, deps: { log: Logger; terminal: string; gpiod?: GpiodOptions }): RealHardware {
  const log = deps.log.child({ module: "hardware" });
  const gpio = { log, gpiod: deps.gpiod };
  const locks: LockPart[] = [];
  const doors: DoorPart[] = [];
  const items: ItemPart[] = [];
  const all: Part[] = [];
  for (const b of profile.boards) {
    switch (b.type) {
      case "gpio-relays": {
        const p = createGpioRelays(b, gpio);
        locks.push(p);
        all.push(p);
        break;
      }
      case "gpio-doors": {
        const p = createGpioDoors(b, gpio);
        doors.push(p);
        all.push(p);
        break;
      }
      case "mcp23017":
      case "pcf8574":
      case "pca9534": {
        const board = b.type === "mcp23017" ? createMcp23017(b, { log }) : b.type === "pcf8574" ? createPcf8574(b, { log }) : createPca9534(b, { log });
        if (board.locks) locks.push(board.locks);
        if (board.doors) doors.push(board.doors);
        all.push(board);
        break;
      }
      case "kerong":
      case "cu8a": {
        for (const p of createRs485Boards(b, { log }).parts) {
          locks.push(p);
          doors.push(p);
          if (p.itemChannels.length) items.push(p);
          all.push(p);
        }
        break;
      }
    }
  }
  const inputs: InputPart[] = [];
  const fingerprints: FingerprintModule[] = [];
  for (const r of profile.readers) {
    if (r.type === "fingerprint") fingerprints.push(new FingerprintModule(r, { log }));
    else inputs.push(createReader(r, { log, terminal: deps.terminal }));
  }
  all.push(...inputs, ...fingerprints);
  const display = profile.display ? createLcd(profile.display, { log }) : undefined;
  if (display) all.push(display);
  // optional: a buzzer/LED that cannot start is reported and skipped, never fatal
  const buzzer = profile.buzzer ? createGpioBuzzer(profile.buzzer, gpio) : undefined;
  if (buzzer) all.push(buzzer);
  const thermometers = new Map<string, Sht3xPart>();
  for (const t of profile.thermometers) {
    const p = createSht3x(t, { log });
    thermometers.set(t.compartment, p);
    all.push(p);
  }
  return new RealHardware({ locks, doors, items, inputs, fingerprints, display, buzzer, thermometers, all, optional: new Set(buzzer ? [buzzer] : []) }, log);
}
