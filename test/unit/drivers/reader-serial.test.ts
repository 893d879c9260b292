// The serial reader drivers over real socat pseudo-terminal pairs (no serialport mock): RDM6300
// frames with garbage, bad checksums and truncated frames between them; a serial keypad; a
// scanner's lines; a Wiegand converter's bits; the port vanishing and coming back. The repeat
// window runs on an injected clock; the pty waits poll for what must arrive, with small timeouts.
import { closeSync, openSync, writeSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { createReader, ReaderConfig, type Reader } from "../../../src/drivers/readers/index.js";
import { rdm6300Frame } from "../../../src/drivers/readers/rdm6300.js";
import type { Input } from "../../../src/drivers/types.js";
import { silentLogger } from "../../../src/log.js";
import { makePtyPair, type PtyPair } from "../../helpers/pty-pair.js";
import { takeThreadPool } from "../../helpers/thread-pool.js";
import { requireTools } from "../../helpers/tools.js";
import { cleanups, until } from "../../helpers/wait.js";

const log = silentLogger();
// socat makes the pseudo-terminal pairs; scripts/test-deps.sh installs it. Missing, the tests fail saying so.
beforeAll(() => requireTools("socat"));
const cleanup = cleanups();


/** A pty pair and a started reader on it, both torn down after the test. */
async function setup(config: Record<string, unknown>, now?: () => number): Promise<{ pty: PtyPair; r: Reader; got: Input[] }> {
  const pty = await makePtyPair();
  cleanup.push(() => pty.close());
  const r = createReader(ReaderConfig.parse({ port: pty.reader, retryMaxMs: 100, ...config }), { log, terminal: "T1", random: () => 0, now });
  const got: Input[] = [];
  r.on("input", (i) => got.push(i));
  await r.start();
  cleanup.push(() => r.stop());
  await until("port open", () => r.health().health === "ok");
  return { pty, r, got };
}

const ids = (got: Input[]) => got.map((i) => (i.kind === "badge" ? i.id : i.kind === "keys" ? i.keys : i.text));

describe("serial readers over a pseudo-terminal", () => {
  it("RDM6300: good frames become badges; garbage, bad checksums and truncated frames are counted and dropped; a held tag counts once", async () => {
    let t = 0;
    const { pty, r, got } = await setup({ type: "rdm6300" }, () => t);
    const tag = rdm6300Frame("1A04A1B2C3");
    const badSum = Buffer.from(tag);
    badSum[12] = 0x46; // checksum CF instead of CE
    // The tag sits on the reader (the frame repeats); line noise and a broken frame between.
    await pty.write(Buffer.concat([Buffer.from([0xff, 0x00]), tag, tag.subarray(0, 6), badSum, tag, tag, rdm6300Frame("0F00123456")]));
    await until("the second tag", () => got.length === 2);
    expect(got).toEqual([
      { kind: "badge", terminal: "T1", id: "04A1B2C3" },
      { kind: "badge", terminal: "T1", id: "00123456" },
    ]);
    expect(r.output.stats).toEqual({ reads: 2, repeats: 2, discarded: { garbage: 1, truncated: 1, checksum: 1 } });
    expect(r.health().detail).toBe("open; 2 reads, 3 discarded (garbage 1, truncated 1, checksum 1)");
    t += 2000; // the tag was taken away and presented again
    await pty.write(tag);
    await until("the tag again", () => got.length === 3);
    expect(ids(got)).toEqual(["04A1B2C3", "00123456", "04A1B2C3"]);
  });

  it("a serial keypad sends keys; the port vanishing is survived without a restart", async () => {
    const { pty, r, got } = await setup({ type: "serial-keypad" });
    const faults: string[] = [];
    r.availability?.on("fault", (d) => faults.push(d));
    await pty.write("12x3#\r\n");
    await until("keys", () => ids(got).join("") === "123#");
    expect(got.every((i) => i.kind === "keys" && i.terminal === "T1")).toBe(true);
    expect(r.output.stats.discarded).toEqual({ noise: 1 });
    await pty.unplug();
    await until("degraded", () => r.health().health === "degraded");
    expect(faults).toHaveLength(1);
    await pty.replug();
    await until("reopened", () => r.health().health === "ok");
    await pty.write("*0#");
    await until("keys after re-plug", () => ids(got).join("") === "123#*0#");
  });

  it("a serial keypad's keys arrive while every thread of libuv's pool is taken (its port reads off the pool)", async () => {
    const { pty, got } = await setup({ type: "serial-keypad" });
    const pool = await takeThreadPool();
    cleanup.push(() => pool.release());
    expect(pool.taken).toBe(true);
    // The device's bytes written without the pool too (the pair's write() is fs/promises).
    const device = openSync(pty.device, "r+");
    cleanup.push(async () => closeSync(device));
    writeSync(device, "42#");
    await until("keys with the pool taken", () => ids(got).join("") === "42#");
  });

  it("a serial reader that is not there at start is absent, then opens when it appears", async () => {
    const pty = await makePtyPair();
    cleanup.push(() => pty.close());
    await pty.unplug();
    const r = createReader(ReaderConfig.parse({ type: "serial-keypad", port: pty.reader, retryMaxMs: 100 }), { log, terminal: "T1", random: () => 0 });
    await r.start();
    cleanup.push(() => r.stop());
    expect(r.health().health).toBe("absent");
    await until("a failed open", () => /cannot open/.test(r.health().detail));
    await pty.replug();
    await until("open", () => r.health().health === "ok");
  });

  it("a Wiegand converter's 26/34-bit lines are parity-checked; bad ones are counted", async () => {
    const { pty, r, got } = await setup({ type: "wiegand-serial", format: "bits", dedupeMs: 0 });
    // fixtures: 121234 (26-bit), the same with E flipped, 04A1B2C3 (34-bit), with O flipped, 25 bits
    await pty.write(
      [
        "10001001000010010001101001",
        "00001001000010010001101001",
        "0000001001010000110110010110000111",
        "0000001001010000110110010110000110",
        "1000100100001001000110100",
        "10000000100000000000000010",
      ].join("\r\n") + "\r\n",
    );
    await until("three cards", () => got.length === 3);
    expect(ids(got)).toEqual(["121234", "04A1B2C3", "010001"]);
    expect(r.output.stats.discarded).toEqual({ "wiegand parity": 2, "wiegand length": 1 });
  });

  it("a Wiegand converter that sends numbers: taken as they are", async () => {
    const { pty, got } = await setup({ type: "wiegand-serial", format: "decimal", lineEnd: "LF" });
    await pty.write("0077705923\n0012345678\r\n");
    await until("two cards", () => got.length === 2);
    expect(ids(got)).toEqual(["0077705923", "0012345678"]);
  });

  it("a serial scanner's lines (CR or CRLF) become scans, once per code within the window", async () => {
    const { pty, got } = await setup({ type: "serial-scanner" }, () => 0);
    await pty.write("L:48213905\r\nL:48213905\r");
    await pty.write("9771234\r");
    await until("two scans", () => got.length === 2);
    expect(got).toEqual([
      { kind: "scan", terminal: "T1", text: "L:48213905" },
      { kind: "scan", terminal: "T1", text: "9771234" },
    ]);
  });
});
