// The I2C bus as the drivers see it: the subset of i2c-bus's PromisifiedBus they use, so
// production is `openPromisified(busNumber)` as is and the emulator (./emulator/bus.ts) is a
// drop-in. Method names are i2c-bus's: readByte/writeByte are SMBus "read/write byte data".
import { access, constants as fsConstants } from "node:fs/promises";
import { ErrorCode, LockerError } from "../../errors.js";
import { errnoCode } from "../gpio/common.js";

export interface I2cBus {
  /** SMBus read byte data: write `command` (a register), repeated start, read one byte. */
  readByte(address: number, command: number): Promise<number>;
  /** SMBus write byte data: `command` (a register) then `byte`. */
  writeByte(address: number, command: number, byte: number): Promise<void>;
  /** SMBus receive byte: one byte read, no register (PCF8574). */
  receiveByte(address: number): Promise<number>;
  /** SMBus send byte: one byte written, no register (PCF8574). */
  sendByte(address: number, byte: number): Promise<void>;
  /** Plain I2C read of `length` bytes into `buffer`. */
  i2cRead(address: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }>;
  /** Plain I2C write of the first `length` bytes of `buffer`. */
  i2cWrite(address: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }>;
  close(): Promise<void>;
}

/** Opens /dev/i2c-<n>. Tests pass an emulator's opener instead. */
export type I2cBusOpener = (busNumber: number) => Promise<I2cBus>;

/** The errno codes an I2C transfer fails with when a device NACKs, is absent or hangs the bus.
 *  These are worth retrying; anything else is a bug or a missing device node. */
export const BUS_ERROR_CODES: ReadonlySet<string> = new Set(["EIO", "ENXIO", "EREMOTEIO", "ETIMEDOUT", "EAGAIN"]);

export function isBusError(e: unknown): boolean {
  const code = errnoCode(e);
  return code !== undefined && BUS_ERROR_CODES.has(code);
}

/** i2c-bus's openPromisified, with what to do when the device node is missing or forbidden. */
export const openI2cBus: I2cBusOpener = async (busNumber) => {
  const { openPromisified } = await import("i2c-bus");
  try {
    // i2c-bus opens /dev/i2c-N per device on its first transfer: check the node up front, so a
    // bus that is not enabled, or not ours to use, says so at start instead of as a device fault.
    await access(`/dev/i2c-${busNumber}`, fsConstants.R_OK | fsConstants.W_OK);
    return await openPromisified(busNumber);
  } catch (e) {
    throw i2cOpenError(e, busNumber);
  }
};

export function i2cOpenError(e: unknown, busNumber: number): LockerError {
  const dev = `/dev/i2c-${busNumber}`;
  const context = { bus: busNumber, cause: errnoCode(e) ?? String(e) };
  switch (errnoCode(e)) {
    case "ENOENT":
      return new LockerError(
        ErrorCode.HardwareUnavailable,
        `${dev} does not exist: enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in config.txt) and reboot`,
        context,
      );
    case "EACCES":
    case "EPERM":
      return new LockerError(
        ErrorCode.HardwareUnavailable,
        `cannot open ${dev} (permission denied): add the user to group i2c (sudo usermod -aG i2c <user>, then log in again; under systemd: SupplementaryGroups=i2c)`,
        context,
      );
    default:
      return new LockerError(ErrorCode.HardwareUnavailable, `cannot open ${dev}: ${e instanceof Error ? e.message : String(e)}`, context);
  }
}

export const hex = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`;

/** "mcp23017 i2c-1@0x20" */
export const deviceName = (kind: string, bus: number, address: number): string => `${kind} i2c-${bus}@${hex(address)}`;
