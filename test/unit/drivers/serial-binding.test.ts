// DirectPort: a serial port's reads and writes on the event loop's thread, not libuv's thread pool.
// The proof: with every thread of the pool taken (test/helpers/thread-pool.ts), bytes still cross a
// pseudo-terminal both ways and a board on the RS485 bus still answers its status read and takes an
// unlock (the bus drains nothing on the pool). serialport's own binding (fs.read and fs.write on
// the pool) moves nothing until the pool is free again. The serial keypad's own proof is in
// reader-serial.test.ts.
import type { SerialPort } from "serialport";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { kerongProtocol } from "../../../src/drivers/rs485/protocols.js";
import { Rs485Bus } from "../../../src/drivers/rs485/bus.js";
import { KerongEmulator } from "../../../src/drivers/rs485/emulator.js";
import { createKerongParser, describeKerong } from "../../../src/drivers/rs485/kerong-codec.js";
import { DirectLinuxBinding, newSerialPort } from "../../../src/drivers/serial-binding.js";
import { silentLogger } from "../../../src/log.js";
import { closeSerial, makePtyPair, type PtyPair } from "../../helpers/socat.js";
import { takeThreadPool } from "../../helpers/thread-pool.js";
import { requireTools } from "../../helpers/tools.js";

beforeAll(() => requireTools("socat"));

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
  let pair: PtyPair;
  const cleanup: (() => Promise<void> | void)[] = [];

  beforeEach(async () => {
    pair = await makePtyPair();
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
    await pair.close();
  });

  /** Both ends of the pair, opened through newSerialPort (closed after the test). */
  async function bothEnds(): Promise<[SerialPort, SerialPort]> {
    const a = await openPort(pair.host);
    const b = await openPort(pair.device);
    cleanup.push(() => closeSerial(a), () => closeSerial(b));
    return [a, b];
  }

  /** Every thread of the pool taken until the test ends; fails the test if they could not be. */
  async function takePool(): Promise<void> {
    const pool = await takeThreadPool();
    cleanup.push(() => pool.release());
    expect(pool.taken).toBe(true);
  }

  it("moves bytes both ways across a pseudo-terminal while every thread of the pool is taken", async () => {
    const [a, b] = await bothEnds();
    await takePool();

    const toB = nextData(b);
    a.write(Buffer.from([0x02, 0x00, 0x30, 0x03, 0x35]));
    expect([...(await toB)]).toEqual([0x02, 0x00, 0x30, 0x03, 0x35]);
    const toA = nextData(a);
    b.write("answer");
    expect(String(await toA)).toBe("answer");
  });

  it("after a read that emptied the kernel's buffer, the next read waits for readiness and still gets bytes that came in between", async () => {
    const port = await DirectLinuxBinding.open({ path: pair.host, baudRate: 19200 } as Parameters<typeof DirectLinuxBinding.open>[0]);
    cleanup.push(() => (port.isOpen ? port.close() : undefined));
    const far = await openPort(pair.device);
    cleanup.push(() => closeSerial(far));
    const buf = Buffer.alloc(64);
    far.write("abc");
    const first = await port.read(buf, 0, 64);
    expect(buf.subarray(0, first.bytesRead).toString()).toBe("abc"); // short: the buffer is empty now
    // More bytes arrive before the next read is asked for: it does not read at once, but the
    // descriptor is readable, so the wait ends at once with them.
    far.write("de");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await Promise.race([port.read(buf, 0, 64), new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000))]);
    expect(second && buf.subarray(0, second.bytesRead).toString()).toBe("de");
    // And a read asked for before anything arrives waits for it.
    const third = port.read(buf, 0, 64);
    far.write("f");
    expect(buf.subarray(0, (await third).bytesRead).toString()).toBe("f");
  });

  it("bursts of keys at random moments (together, apart, while a read is pending or not) all arrive, in order", async () => {
    const [a, b] = await bothEnds();
    let got = "";
    b.on("data", (d: Buffer) => (got += d.toString("latin1")));
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let sent = "";
    for (let i = 0; i < 300; i++) {
      const burst = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => "0123456789*#"[Math.floor(rnd() * 12)]).join("");
      sent += burst;
      a.write(burst);
      const pause = rnd();
      if (pause < 0.3) continue; // back to back
      if (pause < 0.6) await new Promise((resolve) => setImmediate(resolve));
      else await new Promise((resolve) => setTimeout(resolve, Math.floor(rnd() * 3)));
    }
    const until = Date.now() + 5000;
    while (got.length < sent.length && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(got).toBe(sent);
  });

  it("a write larger than the kernel takes at once goes whole and in order, the rest after the port drains", async () => {
    const [a, b] = await bothEnds();
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
    const device = await openPort(pair.device);
    const emu = new KerongEmulator({ boards: [0] });
    const detach = emu.attach(device);
    cleanup.push(() => closeSerial(device), detach);
    const bus = new Rs485Bus({ path: pair.host, baudRate: 19200, parser: createKerongParser(), describe: describeKerong, gapMs: 10, reopen: { baseMs: 20, capMs: 100 }, log: silentLogger() });
    await bus.start();
    cleanup.push(() => bus.stop());
    expect(bus.isOpen).toBe(true);
    await takePool();

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
