// The fingerprint module's config schema apart from its driver (module.ts re-exports it):
// config/schema.ts validates a bank's config with it without loading the driver.
import { z } from "zod";
import { readerFields } from "../fields.js";

/** The factory address (codec.ts re-exports it). */
export const DEFAULT_ADDRESS = 0xffffffff;

export const FingerprintReaderConfig = z.strictObject({
  type: z.literal("fingerprint"),
  port: z.string().min(1).max(4096).describe("e.g. /dev/serial0, /dev/serial/by-id/..."),
  baudRate: z
    .int()
    .refine((b) => b % 9600 === 0 && b >= 9600 && b <= 115_200, { message: "a fingerprint module runs at 9600 × N baud, N = 1..12" })
    .default(57_600)
    .describe("the module's baud rate (factory default 57600)"),
  address: z.int().min(0).max(0xffff_ffff).default(DEFAULT_ADDRESS).describe("the module's 32-bit address (factory default 0xFFFFFFFF = 4294967295)"),
  password: z.int().min(0).max(0xffff_ffff).default(0).describe("the module's handshake password (factory default 0)"),
  threshold: z.int().min(1).max(0xffff).default(50).describe("lowest match score accepted as a finger; lower scores are rejected"),
  librarySize: z.int().min(1).max(1024).optional().describe("template slots used; default the module's own library size (ReadSysPara)"),
  terminal: readerFields.terminal,
  pollMs: z.int().min(20).max(5000).default(150).describe("wait between looks for a finger while none is on the sensor"),
  timeoutMs: z.int().min(50).max(10_000).default(2000).describe("longest wait for the module's answer to one command"),
  retryMaxMs: readerFields.retryMaxMs,
});
export type FingerprintReaderConfig = z.infer<typeof FingerprintReaderConfig>;

