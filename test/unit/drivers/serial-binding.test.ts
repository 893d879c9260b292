// DirectPort: a serial port's reads and writes on the event loop's thread, not libuv's thread pool.
// The proof: with every thread of the pool taken (each blocked opening a FIFO nobody writes to, as a
// DNS lookup with the network down holds one), bytes still cross a pseudo-terminal both ways and a
// board on the RS485 bus still answers its status read and takes an unlock (the bus drains nothing
// on the pool). serialport's own binding (fs.read and fs.write on the pool) moves nothing until the
// pool is free again.
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, open, openSync, rmSync, stat } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SerialPort } from "serialport";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { kerongProtocol } from "../../../src/drivers/rs485/protocols.js";
import { Rs485Bus } from "../../../src/drivers/rs485/bus.js";
import { KerongEmulator } from "../../../src/drivers/rs485/emulator.js";
import { createKerongParser, describeKerong } from "../../../src/drivers/rs485/kerong-codec.js";
import { newSerialPort } from "../../../src/drivers/serial-binding.js";
import { silentLogger } from "../../../src/log.js";
import { closeSerial, makePtyPair, type PtyPair } from "../../helpers/socat.js";
import { requireTools } from "../../helpers/tools.js";

beforeAll(() => requireTools("socat"));

/** Every thread of libuv's pool, each blocked in open() of a FIFO without a writer, until release(). */
async function takeThreadPool(dir: string) {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => join(dir, `fifo-${i}`));
  for (const f of fifos) execFileSync("mkfifo", [f]);
  const readers = fifos.map((f) => new Promise<number>((resolve, reject) => open(f, "r", (e, fd) => (e ? reject(e) : resolve(fd)))));
  // The pool is taken when a job queued behind those cannot run.
  const canary = new Promise<void>((resolve) => stat(dir, () => resolve()));
  const ran = await Promise.race([canary.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 200))]);
  return {
    taken: !ran,
    async release() {
      // A writer opened without blocking lets each blocked open() return.
      const writers = fifos.map((f) => openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      for (const fd of await Promise.all(readers)) closeSync(fd);
      for (const fd of writers) closeSync(fd);
      await canary;
    },
  };
}

function openPort(path: string): Promise<SerialPort> {
  const port = newSerialPort({ path, baudRate: 19200, autoOpen: false });
  return new Promise((resolve, reject) => port.open((e) => (e ? reject(e) : resolve(port))));
}

const nextData = (port: SerialPort, ms = 2000) =>
  new Promise<Buffer>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no data while the thread pool is taken")), ms);
    port.once("data", (d: Buffer) => {
      clearTimeout(t);
      resolve(d);
    });
  });

describe("DirectPort (serial I/O off libuv's thread pool)", () => {
  let dir: string;
  let pair: PtyPair | undefined;
  const cleanup: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    await pair?.close();
    pair = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("moves bytes both ways across a pseudo-terminal while every thread of the pool is taken", async () => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-direct-"));
    pair = await makePtyPair();
    const a = await openPort(pair.host);
    const b = await openPort(pair.device);
    cleanup.push(() => closeSerial(a), () => closeSerial(b));
    const pool = await takeThreadPool(dir);
    cleanup.push(() => pool.release());
    expect(pool.taken).toBe(true);

    const toB = nextData(b);
    a.write(Buffer.from([0x02, 0x00, 0x30, 0x03, 0x35]));
    expect([...(await toB)]).toEqual([0x02, 0x00, 0x30, 0x03, 0x35]);
    const toA = nextData(a);
    b.write("answer");
    expect(String(await toA)).toBe("answer");
  });

  it("a write larger than the kernel takes at once goes whole and in order, the rest after the port drains", async () => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-direct-"));
    pair = await makePtyPair();
    const a = await openPort(pair.host);
    const b = await openPort(pair.device);
    cleanup.push(() => closeSerial(a), () => closeSerial(b));
    // The far end is not consumed yet: its stream's buffer, socat's and the ptys' fill, and
    // writeSync takes only part.
    const sent = Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 7 + (i >> 8)) & 0xff));
    const written = new Promise<void>((resolve, reject) => a.write(sent, (e) => (e ? reject(e) : resolve())));
    let early = false;
    void written.then(() => (early = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(early).toBe(false);
    const got: Buffer[] = [];
    let size = 0;
    const all = new Promise<void>((resolve) =>
      b.on("data", (d: Buffer) => {
        got.push(d);
        size += d.length;
        if (size >= sent.length) resolve();
      }),
    );
    await written;
    await all;
    expect(Buffer.concat(got).equals(sent)).toBe(true);
  });

  it("an RS485 board answers its status read, and takes an unlock it does not answer, while every thread of the pool is taken", async () => {
    dir = mkdtempSync(join(tmpdir(), "lockerd-direct-"));
    pair = await makePtyPair();
    const device = await openPort(pair.device);
    const emu = new KerongEmulator({ boards: [0] });
    emu.setDoor(0, 4, "open");
    const detach = emu.attach(device);
    cleanup.push(() => closeSerial(device), detach);
    const bus = new Rs485Bus({ path: pair.host, baudRate: 19200, parser: createKerongParser(), describe: describeKerong, gapMs: 10, reopen: { baseMs: 20, capMs: 100 }, log: silentLogger() });
    await bus.start();
    cleanup.push(() => bus.stop());
    expect(bus.isOpen).toBe(true);
    const pool = await takeThreadPool(dir);
    cleanup.push(() => pool.release());
    expect(pool.taken).toBe(true);

    const kerong = kerongProtocol({ timeoutMs: 500 });
    const answer = await bus.request(kerong.readStatus(0));
    expect(answer).toMatchObject({ kind: "status", board: 0 });
    // An unlock, which the board does not answer, is sent and done: nothing waits on the pool for it.
    const unlocked = new Promise<void>((resolve) => emu.on("rx", (r) => "command" in r && r.command === "unlock" && resolve()));
    await expect(bus.request(kerong.unlock(0, 3))).resolves.toBeNull();
    await unlocked;
    expect(emu.isOpen(0, 3)).toBe(true);
  });
});
