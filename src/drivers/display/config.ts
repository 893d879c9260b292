// The LCD's config schema apart from its driver (lcd.ts re-exports it): config/schema.ts validates
// a bank's config with it without loading the driver; hd44780.ts re-exports the backpack wiring.
import { z } from "zod";

/** Which PCF8574 bit drives which LCD pin. */
export const BackpackPins = z
  .strictObject({
    rs: z.int().min(0).max(7),
    rw: z.int().min(0).max(7),
    e: z.int().min(0).max(7),
    backlight: z.int().min(0).max(7),
    d4: z.int().min(0).max(7),
    d5: z.int().min(0).max(7),
    d6: z.int().min(0).max(7),
    d7: z.int().min(0).max(7),
  })
  .refine((p) => new Set(Object.values(p)).size === 8, { message: "each backpack bit drives one LCD pin" });
export type BackpackPins = z.infer<typeof BackpackPins>;


/** The common backpack wiring: P0 = RS, P1 = RW, P2 = E, P3 = backlight, P4-P7 = D4-D7. */
export const DEFAULT_BACKPACK_PINS: BackpackPins = { rs: 0, rw: 1, e: 2, backlight: 3, d4: 4, d5: 5, d6: 6, d7: 7 };


export const LcdConfig = z.strictObject({
  type: z.literal("hd44780-i2c"),
  bus: z.int().min(0).max(31).default(1).describe("I2C bus number: /dev/i2c-<bus>"),
  address: z
    .int()
    .refine((a) => (a >= 0x20 && a <= 0x27) || (a >= 0x38 && a <= 0x3f), { message: "PCF8574 0x20-0x27 or PCF8574A 0x38-0x3F" })
    .default(0x27),
  cols: z.union([z.literal(16), z.literal(20)]).default(20),
  rows: z.union([z.literal(2), z.literal(4)]).default(4),
  backlight: z.boolean().default(true),
  pins: BackpackPins.default(DEFAULT_BACKPACK_PINS).describe("PCF8574 bit of each LCD pin"),
  retries: z.int().min(0).max(10).default(2),
});
export type LcdConfig = z.infer<typeof LcdConfig>;

