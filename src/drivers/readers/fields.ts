// Config fields every reader's schema has (config.ts, fingerprint/config.ts), in a module of
// their own: the fingerprint schema and the readers' union both need them.
import { z } from "zod";

/** Config fields every reader has. */
export const readerFields = {
  terminal: z.string().min(1).max(64).optional().describe("the keypad dialogue this reader feeds; default terminal.id"),
  dedupeMs: z.int().min(0).max(10_000).default(1500).describe("the same tag or code again within this counts once"),
  retryMaxMs: z.int().min(50).max(60_000).default(10_000).describe("longest wait between tries to reopen a reader that went away"),
};

/** How a line from a badge reader becomes an id: hex digits as they are, or a decimal card number turned into hex. */
export const badgeIdsField = z
  .enum(["as-is", "decimal-to-hex"])
  .default("as-is")
  .describe("as-is: the line is the id (hex or decimal digits); decimal-to-hex: 0077705923 → 04A1B2C3, as a hex reader of the same card");

