// Credential readers: one factory (their config schemas are in config.ts, re-exported here). Each
// is an InputPart (keys, badge or scan inputs for the keypad dialogue) that reopens by itself when
// its device comes back.
//
//   { "type": "hid", "vendorId": 2303, "productId": 9, "emits": "badge" }
//   { "type": "rdm6300", "port": "/dev/ttyAMA0" }
//   { "type": "wiegand-serial", "port": "/dev/ttyUSB1", "format": "bits" }
//   { "type": "fingerprint", "port": "/dev/serial0", "threshold": 50 }   (not an input part: fingerprint/module.ts)
import type { Logger } from "../../log.js";
import type { InputPart } from "../parts.js";
import { HidReader, type HidApi } from "./hid.js";
import type { ReaderOutput } from "./output.js";
import { SerialReader } from "./serial.js";
import { ReaderConfig } from "./config.js";

export { ReaderConfig };

export interface ReaderDeps {
  log: Logger;
  /** The terminal a reader without its own `terminal` feeds (the config's terminal.id). */
  terminal: string;
  /** node-hid's functions; default the real node-hid (tests pass HidBusEmulator). */
  hid?: HidApi;
  /** Clock for the repeat window (tests). */
  now?: () => number;
  /** Backoff jitter (tests). */
  random?: () => number;
}

/** An input part that also tells what it read and threw away (status, tests). */
export type Reader = InputPart & { readonly output: ReaderOutput };

/** A keypad, badge or code reader (a fingerprint module is not an input part: real/build.ts makes it). */
export function createReader(config: ReaderConfig, deps: ReaderDeps): Reader {
  if (config.type === "fingerprint") throw new TypeError("a fingerprint reader is a FingerprintModule, not an input part");
  return config.type === "hid" ? new HidReader(config, deps) : new SerialReader(config, deps);
}

