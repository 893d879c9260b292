// An emulated I2C bus behind the drivers' I2cBus interface: routes each transaction by address to
// a register-level chip model, NACKs absent addresses with ENXIO (as i2c-bus reports them), and
// fails the next N transactions with EIO / EREMOTEIO on demand. One instance per test.
//
//   driver ──readByte(0x20, 0x12)──▶ I2cBusEmulator ──write [0x12] + read 1──▶ Mcp23017Model
import { sysError } from "../../gpio/emulator.js";
import type { I2cBus } from "../bus.js";

/** A chip on the bus, at the level of I2C transactions (the bytes after the address byte). */
export interface I2cTarget {
  /** A write transaction. Throw nack() to refuse it. */
  write(bytes: Uint8Array): void;
  /** A read transaction of `length` bytes. */
  read(length: number): Uint8Array;
}

const ERRNO: Record<string, string> = {
  EIO: "Input/output error",
  EBADF: "Bad file descriptor",
  ENXIO: "No such device or address",
  EREMOTEIO: "Remote I/O error",
  ETIMEDOUT: "Connection timed out",
};

/** The error i2c-bus raises for a failed transfer: an Error with an errno `code`. */
export function busError(code: string): NodeJS.ErrnoException {
  return sysError(code, ERRNO[code] ?? "I2C transfer failed");
}

/** A chip refusing a transfer (NACK after its address or a data byte). */
export const nack = (): NodeJS.ErrnoException => busError("EREMOTEIO");

export interface Transaction {
  address: number;
  kind: "write" | "read" | "write+read";
  /** Bytes written (register pointer first when there is one). */
  wrote: number[];
  /** Bytes read back. */
  read: number[];
  /** The errno code it failed with, if it did. */
  failed?: string;
}

export class I2cBusEmulator {
  private readonly targets = new Map<number, I2cTarget>();
  private faults: { count: number; code: string; address?: number | undefined } | null = null;
  readonly transactions: Transaction[] = [];
  /** Handles opened and not yet closed (a stopped driver leaves none behind). */
  openHandles = 0;

  attach(address: number, target: I2cTarget): void {
    this.targets.set(address, target);
  }

  /** The chip goes away (unplugged, unpowered): its address NACKs from now on. */
  detach(address: number): void {
    this.targets.delete(address);
  }

  /** The next `count` transactions (to `address`, or to any) fail with `code`, touching no chip. */
  failNext(count: number, code = "EIO", address?: number): void {
    this.faults = { count, code, address };
  }

  /** An opener for the drivers' deps: every bus number opens this bus. */
  opener(): (busNumber: number) => Promise<I2cBus> {
    return async () => this.open();
  }

  /** Transactions to one address, as hex strings such as "w 0a 44" or "wr 12 > 5a". */
  trace(address: number): string[] {
    const h = (b: number[]) => b.map((x) => x.toString(16).padStart(2, "0")).join(" ");
    return this.transactions
      .filter((t) => t.address === address && !t.failed)
      .map((t) => (t.kind === "write" ? `w ${h(t.wrote)}` : t.kind === "read" ? `r > ${h(t.read)}` : `wr ${h(t.wrote)} > ${h(t.read)}`));
  }

  private async transfer(address: number, kind: Transaction["kind"], wrote: number[], readLength: number): Promise<Uint8Array> {
    const t: Transaction = { address, kind, wrote, read: [] };
    this.transactions.push(t);
    const f = this.faults;
    if (f && f.count > 0 && (f.address === undefined || f.address === address)) {
      if (--f.count === 0) this.faults = null;
      t.failed = f.code;
      throw busError(f.code);
    }
    const target = this.targets.get(address);
    if (!target) {
      t.failed = "ENXIO";
      throw busError("ENXIO");
    }
    try {
      if (kind !== "read") target.write(Uint8Array.from(wrote));
      const data = kind === "write" ? new Uint8Array(0) : target.read(readLength);
      t.read = [...data];
      return data;
    } catch (e) {
      t.failed = (e as NodeJS.ErrnoException).code ?? "EIO";
      throw e;
    }
  }

  /** One open handle (a file descriptor on /dev/i2c-N): closing it leaves the others working. */
  open(): I2cBus {
    let closed = false;
    this.openHandles++;
    const io = async (address: number, kind: Transaction["kind"], wrote: number[], length: number) => {
      if (closed) throw busError("EBADF");
      return this.transfer(address, kind, wrote, length);
    };
    return {
      readByte: async (address, command) => (await io(address, "write+read", [command], 1))[0] ?? 0xff,
      writeByte: async (address, command, byte) => void (await io(address, "write", [command, byte & 0xff], 0)),
      receiveByte: async (address) => (await io(address, "read", [], 1))[0] ?? 0xff,
      sendByte: async (address, byte) => void (await io(address, "write", [byte & 0xff], 0)),
      i2cRead: async (address, length, buffer) => {
        const data = await io(address, "read", [], length);
        buffer.set(data.subarray(0, length));
        return { bytesRead: data.length, buffer };
      },
      i2cWrite: async (address, length, buffer) => {
        await io(address, "write", [...buffer.subarray(0, length)], 0);
        return { bytesWritten: length, buffer };
      },
      close: async () => {
        if (!closed) this.openHandles--;
        closed = true;
      },
    };
  }
}
