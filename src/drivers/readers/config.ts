// The readers' config schemas and the fields they share, apart from the drivers: config/schema.ts
// validates a bank's config with these alone, so a bank without readers (the simulated one) never
// loads the reader drivers. The drivers (output.ts, serial.ts, hid.ts, index.ts) re-export what is theirs.
import { z } from "zod";
import { badgeIdsField, readerFields } from "./fields.js";
import { FingerprintReaderConfig } from "./fingerprint/config.js";

export { badgeIdsField, readerFields };

const serialFields = {
  ...readerFields,
  port: z.string().min(1).max(4096).describe("e.g. /dev/ttyAMA0, /dev/serial/by-id/..."),
  baudRate: z.int().min(300).max(921_600).default(9600),
};
/** What ends a line; CRLF works with either (the other character is trimmed off). */
const lineEnd = z.enum(["CR", "LF"]).default("CR").describe("the device's line suffix");

export const SerialKeypadConfig = z.strictObject({ type: z.literal("serial-keypad"), ...serialFields });
export const SerialScannerConfig = z.strictObject({
  type: z.literal("serial-scanner"),
  ...serialFields,
  lineEnd,
  emits: z.enum(["scan", "badge"]).default("scan").describe("a line is a scanned QR / barcode text, or a badge id (serial badge readers)"),
  badgeIds: badgeIdsField,
});
export const Rdm6300Config = z.strictObject({
  type: z.literal("rdm6300"),
  ...serialFields,
  idDigits: z.union([z.literal(8), z.literal(10)]).default(8).describe("badge id: the 8-digit card id, or all 10 (version + card)"),
});
export const WiegandSerialConfig = z.strictObject({
  type: z.literal("wiegand-serial"),
  ...serialFields,
  lineEnd,
  format: z.enum(["bits", "decimal", "hex"]).default("bits").describe("what the converter sends per card: raw bits (26/34, parity checked), or the card number"),
});
export type SerialReaderConfig =
  | z.infer<typeof SerialKeypadConfig>
  | z.infer<typeof SerialScannerConfig>
  | z.infer<typeof Rdm6300Config>
  | z.infer<typeof WiegandSerialConfig>;

const usbId = z.int().min(0).max(0xffff);

export const HidReaderConfig = z
  .strictObject({
    type: z.literal("hid"),
    ...readerFields,
    vendorId: usbId.optional().describe("USB vendor id as a number (lsusb's 08ff → 2303)"),
    productId: usbId.optional().describe("USB product id as a number (lsusb's 0009 → 9)"),
    path: z.string().min(1).max(4096).optional().describe("a hidraw node instead of vendor/product, e.g. a udev symlink /dev/lockerd-badge"),
    emits: z.enum(["badge", "scan"]).default("badge").describe("what a line is: a badge id, or a scanned QR / barcode text"),
    badgeIds: badgeIdsField,
    reportId: z.boolean().default(false).describe("reports start with a report ID byte (some composite readers)"),
    lineTimeoutMs: z.int().min(50).max(10_000).default(500).describe("a partial read with no key for this long is dropped"),
  })
  .refine((c) => c.path !== undefined || (c.vendorId !== undefined && c.productId !== undefined), { message: "give vendorId and productId, or path" });
export type HidReaderConfig = z.infer<typeof HidReaderConfig>;

export const ReaderConfig = z.discriminatedUnion("type", [HidReaderConfig, SerialKeypadConfig, SerialScannerConfig, Rdm6300Config, WiegandSerialConfig, FingerprintReaderConfig]);
export type ReaderConfig = z.infer<typeof ReaderConfig>;

