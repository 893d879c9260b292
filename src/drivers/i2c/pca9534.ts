// PCA9534-style 8-relay HAT (NXP PCA9534 datasheet rev. 7; TCA9534 / PCA9554 are the same
// registers): input port 0, output port 1, polarity inversion 2, configuration 3 (1 = input).
// These HATs wire relays to bits out of order, so the config maps each lock channel to its bit.
import { ExpanderBoard, type ExpanderChip, type I2cDeps } from "./expander.js";
import { Pca9534Config } from "./config.js";

export { Pca9534Config };

export const PCA9534_REG = { INPUT: 0, OUTPUT: 1, POLARITY: 2, CONFIG: 3 } as const;

export function pca9534Chip(address: number, outputMask: number): ExpanderChip {
  const R = PCA9534_REG;
  return {
    async init(bus, outputs) {
      // Output latch before direction: a pin becomes an output already at "off".
      await bus.writeByte(address, R.OUTPUT, outputs & outputMask);
      await bus.writeByte(address, R.POLARITY, 0);
      await bus.writeByte(address, R.CONFIG, ~outputMask & 0xff);
    },
    writeOutputs: (bus, outputs) => bus.writeByte(address, R.OUTPUT, outputs & outputMask),
    readInputs: (bus) => bus.readByte(address, R.INPUT),
  };
}

/** A relay-only board: register `board.locks`; `board.doors` is null. */
export function createPca9534(config: Pca9534Config, deps: I2cDeps): ExpanderBoard {
  const bits = config.relays.channels;
  return new ExpanderBoard(
    {
      kind: "pca9534",
      address: config.address,
      config,
      relays: { bits, activeLow: config.relays.activeLow },
      doors: { bits: [], activeLow: false },
      chip: pca9534Chip(
        config.address,
        bits.reduce((m, b) => m | (1 << b.bit), 0),
      ),
    },
    deps,
  );
}
