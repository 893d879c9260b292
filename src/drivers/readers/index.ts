// Credential readers: their config schemas and one factory. Each is an InputPart (keys, badge or
// scan inputs for the keypad dialogue), reopening by itself when its device comes back.
import { z } from "zod";
import type { Logger } from "../../log.js";
import type { InputPart } from "../parts.js";
import { HidReader, HidReaderConfig, type HidApi } from "./hid.js";
import { Rdm6300Config, SerialKeypadConfig, SerialReader, SerialScannerConfig, WiegandSerialConfig } from "./serial.js";

export const ReaderConfig = z.discriminatedUnion("type", [HidReaderConfig, SerialKeypadConfig, SerialScannerConfig, Rdm6300Config, WiegandSerialConfig]);
export type ReaderConfig = z.infer<typeof ReaderConfig>;

export function createReader(config: ReaderConfig, deps: { log: Logger; terminal: string; hid?: HidApi }): InputPart {
  return config.type === "hid" ? new HidReader(config, deps) : new SerialReader(config, deps);
}
