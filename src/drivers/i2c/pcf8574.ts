// PCF8574 / PCF8574A 8-bit quasi-bidirectional expander (NXP datasheet rev. 5). No registers: a
// write sets the 8 output latches, a read returns the 8 pin levels. A latch at 1 is a weak pull-up,
// so an input is a pin whose latch is 1 and that something outside pulls low (section 8.1).
// Relays on a PCF8574 are active-low as a rule: it sinks 25 mA but sources only ~100 µA.
import { z } from "zod";
import { LockChannel } from "../gpio/common.js";
import { ExpanderBoard, doorInputFields, i2cDeviceFields, type BitChannel, type ExpanderChip, type I2cDeps } from "./expander.js";

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

export function pcf8574Chip(address: number, outputMask: number): ExpanderChip {
  // Every bit that is not a relay is written 1: an input, or unused and weakly high.
  const byte = (outputs: number) => ((outputs & outputMask) | (~outputMask & 0xff)) & 0xff;
  return {
    init: (bus, outputs) => bus.sendByte(address, byte(outputs)),
    writeOutputs: (bus, outputs) => bus.sendByte(address, byte(outputs)),
    readInputs: (bus) => bus.receiveByte(address),
  };
}

const maskOf = (bits: readonly BitChannel[]): number => bits.reduce((m, b) => m | (1 << b.bit), 0);

export function createPcf8574(config: Pcf8574Config, deps: I2cDeps): ExpanderBoard {
  const relays = config.relays?.channels ?? [];
  return new ExpanderBoard(
    {
      kind: config.address >= 0x38 ? "pcf8574a" : "pcf8574",
      address: config.address,
      config,
      relays: { bits: relays, activeLow: config.relays?.activeLow ?? true },
      doors: { bits: config.doors?.channels ?? [], activeLow: config.doors?.activeLow ?? true },
      chip: pcf8574Chip(config.address, maskOf(relays)),
    },
    deps,
  );
}
