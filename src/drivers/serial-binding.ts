// The serial ports' I/O on Linux, without libuv's thread pool.
//
// serialport's Linux binding reads and writes with fs.read / fs.write, which run on libuv's thread
// pool (4 threads, shared with every fs call, DNS lookup and crypto hash of the process). Each
// answer from a board costs three trips through it (a read that finds nothing, the readiness wait,
// the read), each a wake-up of the event loop; and while the pool is taken (a broker's hostname
// lookup with DNS down holds a thread for seconds; a backup's copies) the bus cannot read or write at
// all: polls time out, boards fault, doors do not open.
//
// The port's descriptor is non-blocking (the binding opens it O_NONBLOCK), so a read or a write of a
// few bytes never waits: this binding does them at once on the event loop's thread (readSync /
// writeSync), and waits for readiness with the binding's own poller (epoll) only when there is
// nothing to read or the kernel's buffer is full. Everything else (open, close, termios, flush,
// drain) is serialport's. A write the kernel takes only in part leaves the rest to the binding's
// own write, which waits for the port to be writable.
//
// Loaded on first use (import("./serial-binding.js")), as serialport itself: a bank without serial
// parts never loads the native addon.
import { readSync, writeSync } from "node:fs";
import {
  LinuxBinding,
  type AutoDetectTypes,
  type BindingInterface,
  type BindingPortInterface,
  type LinuxOpenOptions,
  type LinuxPortBinding,
  type PortInfo,
} from "@serialport/bindings-cpp";
import { SerialPort, type SerialPortOpenOptions } from "serialport";

type Errno = Error & { code?: string; errno?: number; disconnect?: boolean; canceled?: boolean };

const retryable = (e: Errno) => e.code === "EAGAIN" || e.code === "EWOULDBLOCK" || e.code === "EINTR";

/** As the binding marks them: these mean the device is gone (serialport then closes the port). */
function markDisconnect(e: Errno): Errno {
  if (e.code === "EBADF" || e.code === "ENXIO" || e.code === "UNKNOWN" || e.errno === -1) e.disconnect = true;
  return e;
}

function canceled(): Errno {
  const e: Errno = new Error("Port is not open");
  e.canceled = true;
  return e;
}

/** A Linux port whose reads and writes go straight to its non-blocking descriptor. */
export class DirectPort implements BindingPortInterface {
  /**
   * The last read took less than it asked for: the kernel's buffer was emptied, so the next read
   * (the stream asks again at once) would only fail with EAGAIN, an exception and a syscall per
   * answer. It waits for readiness first instead; the poller is level-triggered, so bytes that came
   * in between make it ready at once.
   */
  private emptied = false;

  constructor(private readonly inner: LinuxPortBinding) {}

  get openOptions() {
    return this.inner.openOptions;
  }

  get isOpen(): boolean {
    return this.inner.isOpen;
  }

  async read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }> {
    for (;;) {
      const fd = this.inner.fd;
      if (fd === null) throw canceled();
      if (!this.emptied) {
        try {
          const bytesRead = readSync(fd, buffer, offset, length, null);
          this.emptied = bytesRead < length;
          if (bytesRead > 0) return { buffer, bytesRead };
        } catch (e) {
          if (!retryable(e as Errno)) throw markDisconnect(e as Errno);
        }
      }
      this.emptied = false;
      // Nothing there yet (or a hang-up's zero-length read): wait until the descriptor is readable.
      // Not the binding's unixRead with a synchronous read put in: it retries a zero-length read at
      // once, which with a read that never waits would spin the event loop on a hung-up line.
      await new Promise<void>((resolve, reject) => this.inner.poller.once("readable", (err) => (err ? reject(err) : resolve())));
    }
  }

  async write(buffer: Buffer): Promise<void> {
    const fd = this.inner.fd;
    if (fd === null) throw new Error("Port is not open");
    if (buffer.length === 0) return;
    let written = 0;
    try {
      written = writeSync(fd, buffer);
    } catch (e) {
      if (!retryable(e as Errno)) throw markDisconnect(e as Errno);
    }
    // The kernel's buffer was full: the rest through the binding, which waits until it is writable.
    if (written < buffer.length) await this.inner.write(buffer.subarray(written));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
  update(options: { baudRate: number }): Promise<void> {
    return this.inner.update(options);
  }
  set(options: Parameters<LinuxPortBinding["set"]>[0]): Promise<void> {
    return this.inner.set(options);
  }
  get() {
    return this.inner.get();
  }
  getBaudRate(): Promise<{ baudRate: number }> {
    return this.inner.getBaudRate();
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  drain(): Promise<void> {
    return this.inner.drain();
  }
}

/** serialport's binding for Linux with DirectPort's I/O; give it as `binding` to `new SerialPort(...)`. */
export const DirectLinuxBinding: BindingInterface<DirectPort, LinuxOpenOptions, PortInfo> = {
  list: () => LinuxBinding.list(),
  open: async (options: LinuxOpenOptions) => new DirectPort(await LinuxBinding.open(options)),
};

/**
 * A serialport SerialPort (the same stream, events and methods) whose I/O is DirectPort's on Linux;
 * elsewhere serialport's own binding. SerialPort takes `binding` from its options over the one it
 * detected; its option type leaves the key out, hence the cast.
 */
export function newSerialPort(options: SerialPortOpenOptions<AutoDetectTypes>): SerialPort {
  if (process.platform !== "linux") return new SerialPort(options);
  return new SerialPort({ ...options, binding: DirectLinuxBinding } as unknown as SerialPortOpenOptions<AutoDetectTypes>);
}
