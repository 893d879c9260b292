// MCP23017 16-bit I/O expander (Microchip DS20001952C): relays on one port, door inputs with the
// chip's 100 kΩ pull-ups on the other, optionally its INT output on a Pi GPIO. Registers are the
// IOCON.BANK = 0 (power-on) layout, Table 3-1; port A = bits 0-7, port B = bits 8-15.
import type { I2cBus } from "./bus.js";
import { ExpanderBoard, bitsFromList, type ExpanderChip, type I2cDeps } from "./expander.js";
import { Mcp23017Config } from "./config.js";

export { Mcp23017Config };

/** BANK = 0 register addresses of port A; port B's is the next address (Table 3-1). */
export const MCP23017_REG = {
  IODIR: 0x00,
  IPOL: 0x02,
  GPINTEN: 0x04,
  DEFVAL: 0x06,
  INTCON: 0x08,
  IOCON: 0x0a,
  GPPU: 0x0c,
  INTF: 0x0e,
  INTCAP: 0x10,
  GPIO: 0x12,
  OLAT: 0x14,
} as const;

/** IOCON: MIRROR (INTA/INTB both signal either port) | ODR (open-drain INT: safe with a 5 V chip,
 *  needs a pull-up to 3.3 V). BANK = 0, SEQOP = 0, INTPOL ignored with ODR (section 3.5.6). */
export const MCP23017_IOCON = 0x40 | 0x04;

const portOffset = (port: "A" | "B"): number => (port === "A" ? 0 : 8);
const maskOf = (bits: readonly { bit: number }[]): number => bits.reduce((m, b) => m | (1 << b.bit), 0);
const lo = (v: number): number => v & 0xff;
const hi = (v: number): number => (v >> 8) & 0xff;

/** Write a register pair A then B (BANK = 0: B is the next address). */
async function writePair(bus: I2cBus, address: number, reg: number, value: number): Promise<void> {
  await bus.writeByte(address, reg, lo(value));
  await bus.writeByte(address, reg + 1, hi(value));
}

export function mcp23017Chip(address: number, outputMask: number, inputMask: number, pullUps: number, interrupts: number): ExpanderChip {
  const ports = (mask: number) => ({ a: lo(mask) !== 0, b: hi(mask) !== 0 });
  const out = ports(outputMask);
  const inp = ports(inputMask);
  return {
    async init(bus, outputs) {
      const R = MCP23017_REG;
      await bus.writeByte(address, R.IOCON, MCP23017_IOCON);
      // The latch first, so a pin turned into an output starts at "off" (no relay click).
      await writePair(bus, address, R.OLAT, outputs);
      await writePair(bus, address, R.IPOL, 0);
      await writePair(bus, address, R.GPPU, pullUps);
      await writePair(bus, address, R.DEFVAL, 0);
      await writePair(bus, address, R.INTCON, 0); // interrupt on any change from the previous value
      await writePair(bus, address, R.GPINTEN, interrupts);
      await writePair(bus, address, R.IODIR, ~outputMask & 0xffff); // 1 = input
    },
    async writeOutputs(bus, outputs) {
      if (out.a) await bus.writeByte(address, MCP23017_REG.OLAT, lo(outputs));
      if (out.b) await bus.writeByte(address, MCP23017_REG.OLAT + 1, hi(outputs));
    },
    async readInputs(bus) {
      // Reading GPIO also clears a pending interrupt of that port (section 3.6.5).
      const a = inp.a ? await bus.readByte(address, MCP23017_REG.GPIO) : 0;
      const b = inp.b ? await bus.readByte(address, MCP23017_REG.GPIO + 1) : 0;
      return a | (b << 8);
    },
  };
}

/** One MCP23017 board. Register `board.locks` and `board.doors` with the profile; listen to the
 *  board's "fault" / "recovered". */
export function createMcp23017(config: Mcp23017Config, deps: I2cDeps): ExpanderBoard {
  const relays = config.relays ? bitsFromList(config.relays.channels, portOffset(config.relays.port)) : [];
  const doors = config.doors ? bitsFromList(config.doors.channels, portOffset(config.doors.port)) : [];
  const inputMask = maskOf(doors);
  const chip = mcp23017Chip(config.address, maskOf(relays), inputMask, config.doors?.pullUp ? inputMask : 0, config.interrupt ? inputMask : 0);
  return new ExpanderBoard(
    {
      kind: "mcp23017",
      address: config.address,
      config,
      relays: { bits: relays, activeLow: config.relays?.activeLow ?? false },
      doors: { bits: doors, activeLow: config.doors?.activeLow ?? true },
      chip,
    },
    deps,
  );
}
