// PCF8574 / PCF8574A 8-bit quasi-bidirectional expander (NXP datasheet rev. 5). No registers: a
// write sets the 8 output latches, a read returns the 8 pin levels. A latch at 1 is a weak pull-up,
// so an input is a pin whose latch is 1 and that something outside pulls low (section 8.1).
// Relays on a PCF8574 are active-low as a rule: it sinks 25 mA but sources only ~100 µA.
import { ExpanderBoard, type BitChannel, type ExpanderChip, type I2cDeps } from "./expander.js";
import { BitMap, Pcf8574Config, isPcf8574Address } from "./config.js";

export { BitMap, Pcf8574Config, isPcf8574Address };

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
