// The emulated bus and chip models on their own, against the datasheets: these are what the driver
// tests trust, so they are checked with literal transactions here.
import { describe, expect, it } from "vitest";
import { i2cOpenError, isBusError } from "../../../src/drivers/i2c/bus.js";
import { I2cBusEmulator } from "../../../src/drivers/i2c/emulator/bus.js";
import { Mcp23017Model } from "../../../src/drivers/i2c/emulator/mcp23017.js";
import { Pca9534Model } from "../../../src/drivers/i2c/emulator/pca9534.js";
import { Pcf8574Model } from "../../../src/drivers/i2c/emulator/pcf8574.js";
import { ErrorCode } from "../../../src/errors.js";

const code = (e: unknown) => (e as { code?: string }).code;

describe("i2c bus emulator", () => {
  it("NACKs an absent address with ENXIO and fails the next N transactions on demand", async () => {
    const emu = new I2cBusEmulator();
    const bus = emu.open();
    expect(code(await bus.readByte(0x20, 0).catch((e: unknown) => e))).toBe("ENXIO");
    emu.attach(0x20, new Mcp23017Model());
    emu.failNext(2, "EREMOTEIO");
    expect(code(await bus.readByte(0x20, 0).catch((e: unknown) => e))).toBe("EREMOTEIO");
    expect(code(await bus.readByte(0x20, 0).catch((e: unknown) => e))).toBe("EREMOTEIO");
    expect(await bus.readByte(0x20, 0)).toBe(0xff); // IODIRA at power-on
    const errors = emu.transactions.map((t) => t.failed);
    expect(errors).toEqual(["ENXIO", "EREMOTEIO", "EREMOTEIO", undefined]);
    expect(errors.slice(0, 3).every((c) => isBusError({ code: c }))).toBe(true);
  });

  it("keeps other handles working when one is closed", async () => {
    const emu = new I2cBusEmulator();
    emu.attach(0x20, new Pcf8574Model());
    const a = emu.open();
    const b = emu.open();
    await a.close();
    expect(code(await a.receiveByte(0x20).catch((e: unknown) => e))).toBe("EBADF");
    expect(await b.receiveByte(0x20)).toBe(0xff);
    expect(emu.openHandles).toBe(1);
  });
});

describe("mcp23017 model (DS20001952C, BANK = 0)", () => {
  it("reads inputs through IPOL, floating inputs as their pull-up, outputs as OLAT", async () => {
    const emu = new I2cBusEmulator();
    const chip = new Mcp23017Model();
    emu.attach(0x20, chip);
    const bus = emu.open();
    await bus.writeByte(0x20, 0x00, 0xf0); // IODIRA: GPA0-3 outputs
    await bus.writeByte(0x20, 0x12, 0x05); // writing GPIOA writes OLATA
    expect(chip.reg("OLATA")).toBe(0x05);
    await bus.writeByte(0x20, 0x0c, 0x30); // GPPUA on GPA4, GPA5
    chip.setPin(6, 1);
    // inputs: GPA4/5 pulled up = 1, GPA6 driven 1, GPA7 floating = 0; outputs 0101
    expect(await bus.readByte(0x20, 0x12)).toBe(0b0111_0101);
    await bus.writeByte(0x20, 0x02, 0xff); // IPOLA inverts the inputs only
    expect(await bus.readByte(0x20, 0x12)).toBe(0b1000_0101);
  });

  it("increments the register pointer over a multi-byte write (SEQOP = 0)", async () => {
    const emu = new I2cBusEmulator();
    const chip = new Mcp23017Model();
    emu.attach(0x20, chip);
    await emu.open().i2cWrite(0x20, 3, Buffer.from([0x14, 0xaa, 0x55]));
    expect([chip.reg("OLATA"), chip.reg("OLATB")]).toEqual([0xaa, 0x55]);
  });

  it("flags an interrupt on change, captures the port, and clears it when GPIO is read", async () => {
    const emu = new I2cBusEmulator();
    const chip = new Mcp23017Model();
    emu.attach(0x20, chip);
    const bus = emu.open();
    const ints: number[] = [];
    chip.onInterrupt = (pin, level) => pin === 1 && ints.push(level);
    await bus.writeByte(0x20, 0x0d, 0xff); // GPPUB
    await bus.writeByte(0x20, 0x05, 0x01); // GPINTENB: GPB0
    chip.setPin(8, 0);
    expect(chip.reg("INTFB")).toBe(0x01);
    expect(chip.reg("INTCAPB")).toBe(0xfe);
    expect(chip.intLevel(1)).toBe(0); // push-pull, INTPOL = 0: active low
    expect(await bus.readByte(0x20, 0x13)).toBe(0xfe);
    expect(chip.reg("INTFB")).toBe(0);
    expect(ints).toEqual([0, 1]);
  });
});

describe("pcf8574 and pca9534 models", () => {
  it("pcf8574: a latch at 0 wins over the outside; a 1 reads the outside or the weak pull-up", async () => {
    const chip = new Pcf8574Model();
    chip.setPin(1, 0);
    chip.latch = 0b1111_1110;
    expect(chip.pins()).toBe(0b1111_1100);
  });

  it("pca9534: power-on registers, config 1 = input, input register through polarity", async () => {
    const emu = new I2cBusEmulator();
    const chip = new Pca9534Model();
    emu.attach(0x21, chip);
    const bus = emu.open();
    expect([await bus.readByte(0x21, 1), await bus.readByte(0x21, 2), await bus.readByte(0x21, 3)]).toEqual([0xff, 0x00, 0xff]);
    chip.setPin(0, 0);
    expect(await bus.readByte(0x21, 0)).toBe(0xfe);
    await bus.writeByte(0x21, 2, 0x01);
    expect(await bus.readByte(0x21, 0)).toBe(0xff);
    expect(code(await bus.writeByte(0x21, 4, 0).catch((e: unknown) => e))).toBe("EREMOTEIO");
  });
});

describe("i2c open errors", () => {
  it("says to enable I2C when /dev/i2c-N is missing, and to join group i2c on EACCES", () => {
    const missing = i2cOpenError(Object.assign(new Error("ENOENT"), { code: "ENOENT" }), 1);
    expect(missing.code).toBe(ErrorCode.HardwareUnavailable);
    expect(missing.message).toContain("/dev/i2c-1 does not exist: enable I2C");
    const denied = i2cOpenError(Object.assign(new Error("EACCES"), { code: "EACCES" }), 1);
    expect(denied.message).toContain("add the user to group i2c");
  });
});
