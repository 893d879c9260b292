// Credential readers: their config schemas and one factory. Each is an InputPart (keys, badge or
// scan inputs for the keypad dialogue) that reopens by itself when its device comes back.
//
//   { "type": "hid", "vendorId": 2303, "productId": 9, "emits": "badge" }
//   { "type": "rdm6300", "port": "/dev/ttyAMA0" }
//   { "type": "wiegand-serial", "port": "/dev/ttyUSB1", "format": "bits" }
import { z } from "zod";
import type { Logger } from "../../log.js";
import type { InputPart } from "../parts.js";
import { HidReader, HidReaderConfig, type HidApi } from "./hid.js";
import type { ReaderOutput } from "./output.js";
import { Rdm6300Config, SerialKeypadConfig, SerialReader, SerialScannerConfig, WiegandSerialConfig } from "./serial.js";

export const ReaderConfig = z.discriminatedUnion("type", [HidReaderConfig, SerialKeypadConfig, SerialScannerConfig, Rdm6300Config, WiegandSerialConfig]);
export type ReaderConfig = z.infer<typeof ReaderConfig>;

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

export function createReader(config: ReaderConfig, deps: ReaderDeps): Reader {
  return config.type === "hid" ? new HidReader(config, deps) : new SerialReader(config, deps);
}

