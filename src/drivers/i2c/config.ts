// The config schemas of the I2C parts (port expanders, SHT3x sensors) and the fields they share,
// apart from the drivers: config/schema.ts validates a bank's config with these alone, so a bank
// without I2C boards (the simulated one) never loads the I2C drivers. The drivers re-export what
// is theirs.
import { z } from "zod";
import { BcmPin, LockChannel, gpioChipFields } from "../gpio/config.js";

/** Fields every I2C device's config has. */
export const i2cDeviceFields = {
  bus: z.int().min(0).max(31).default(1).describe("I2C bus number: /dev/i2c-<bus> (1 on the Pi header)"),
  retries: z.int().min(0).max(10).default(3).describe("bus errors retried before the device counts as faulted"),
};

/** Fields of a board with door inputs. */
export const doorInputFields = {
  debounceMs: z.int().min(0).max(1000).default(30).describe("a level must hold this long to count"),
  pollMs: z.int().min(10).max(5000).default(50).describe("inputs read this often (without an interrupt line)"),
};

/** The expander's INT output wired to a Pi GPIO: inputs are read on its falling edge. */
export const InterruptConfig = z.strictObject({
  pin: BcmPin.describe("BCM GPIO the INT output is wired to (needs a pull-up to 3.3 V)"),
  ...gpioChipFields,
  reconcileMs: z.int().min(50).max(60_000).default(1000).describe("inputs also re-read this often (a missed interrupt)"),
});

/** PCF8574: 0x20-0x27; PCF8574A: 0x38-0x3F (0x20/0x38 + A2A1A0). */
export const isPcf8574Address = (a: number): boolean => (a >= 0x20 && a <= 0x27) || (a >= 0x38 && a <= 0x3f);

export const BitMap = z
  .array(z.strictObject({ channel: LockChannel, bit: z.int().min(0).max(7) }))
  .min(1)
  .max(8)
  .refine((l) => new Set(l.map((x) => x.channel)).size === l.length, { message: "a channel is listed twice" })
  .refine((l) => new Set(l.map((x) => x.bit)).size === l.length, { message: "a bit is listed twice" });

export const Pcf8574Config = z
  .strictObject({
    type: z.literal("pcf8574"),
    ...i2cDeviceFields,
    address: z.int().refine(isPcf8574Address, { message: "PCF8574 0x20-0x27 or PCF8574A 0x38-0x3F" }).default(0x20),
    relays: z
      .strictObject({
        channels: BitMap,
        activeLow: z.boolean().default(true).describe("relays energize when their pin is low (the usual PCF8574 wiring)"),
      })
      .optional(),
    doors: z
      .strictObject({
        channels: BitMap,
        activeLow: z.boolean().default(true).describe("the input reads low when the door is closed (switch to GND)"),
      })
      .optional(),
    ...doorInputFields,
  })
  .refine((c) => c.relays || c.doors, { message: "a pcf8574 needs relays, doors or both" })
  .refine(
    (c) => {
      const used = new Set(c.relays?.channels.map((r) => r.bit));
      return !c.doors?.channels.some((d) => used.has(d.bit));
    },
    { message: "a bit is both a relay and a door" },
  );
export type Pcf8574Config = z.infer<typeof Pcf8574Config>;

export const Pca9534Config = z.strictObject({
  type: z.literal("pca9534"),
  ...i2cDeviceFields,
  address: z
    .int()
    .refine((a) => (a >= 0x20 && a <= 0x27) || (a >= 0x38 && a <= 0x3f), { message: "PCA9534 0x20-0x27 or PCA9534A 0x38-0x3F" })
    .default(0x20),
  relays: z.strictObject({
    channels: BitMap.describe("for each lock channel, the output bit its relay is on"),
    activeLow: z.boolean().default(false).describe("relays energize when their output is low"),
  }),
});
export type Pca9534Config = z.infer<typeof Pca9534Config>;

const Port = z.enum(["A", "B"]);
const channelList = z
  .array(LockChannel.nullable())
  .min(1)
  .max(8)
  .describe("lock channel per bit, bit 0 first; null = bit unused")
  .refine((l) => new Set(l.filter((c) => c !== null)).size === l.filter((c) => c !== null).length, { message: "a channel is listed twice" });

export const Mcp23017Config = z
  .strictObject({
    type: z.literal("mcp23017"),
    ...i2cDeviceFields,
    address: z.int().min(0x20).max(0x27).default(0x20).describe("0x20 + A2A1A0"),
    relays: z
      .strictObject({
        port: Port.default("A"),
        channels: channelList,
        activeLow: z.boolean().default(false).describe("relays energize when their output is low"),
      })
      .optional(),
    doors: z
      .strictObject({
        port: Port.default("B"),
        channels: channelList,
        activeLow: z.boolean().default(true).describe("the input reads low when the door is closed (switch to GND)"),
        pullUp: z.boolean().default(true).describe("the chip's 100 kΩ pull-ups on the door inputs"),
      })
      .optional(),
    ...doorInputFields,
    interrupt: InterruptConfig.optional().describe("INTA/INTB (mirrored) wired to a Pi GPIO; else the inputs are polled"),
  })
  .refine((c) => c.relays || c.doors, { message: "an mcp23017 needs relays, doors or both" })
  .refine((c) => !c.relays || !c.doors || c.relays.port !== c.doors.port, { message: "relays and doors must be on different ports" });
export type Mcp23017Config = z.infer<typeof Mcp23017Config>;

export const Sht3xConfig = z.strictObject({
  type: z.literal("sht3x"),
  bus: z.int().min(0).max(31).default(1).describe("I2C bus number: /dev/i2c-<bus>"),
  address: z.union([z.literal(0x44), z.literal(0x45)]).default(0x44).describe("0x44 (ADDR to GND) or 0x45 (ADDR to VDD)"),
  compartment: z.string().min(1).max(16).describe("the refrigerated compartment the sensor sits in, e.g. A03"),
  retries: z.int().min(0).max(5).default(1).describe("measurements retried after a bus error"),
});
export type Sht3xConfig = z.infer<typeof Sht3xConfig>;

