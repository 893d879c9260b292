// lockerctl people set-pin on a terminal: echo goes off before the first prompt is shown (a
// technician who types as soon as "New PIN" appears is never echoed: the clean-clone CI saw the
// PIN on the screen when the prompt came first and raw mode second), keys typed ahead are kept
// for the second entry, and the terminal is given back with echo on whatever happens.
import { PassThrough, Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readPinTwice } from "../../../src/cli/people.js";

/** A terminal at the level lockerctl sees it: a TTY read stream with raw mode, and stderr. */
function terminal() {
  const log: string[] = [];
  const input = new PassThrough() as unknown as NodeJS.ReadStream & PassThrough;
  let raw = false;
  Object.assign(input, {
    isTTY: true,
    setRawMode(on: boolean) {
      raw = on;
      log.push(`raw ${on}`);
      return input;
    },
  });
  const err = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const s = chunk.toString();
      if (s.trim()) log.push(`prompt ${s.trim()}`);
      cb();
    },
  });
  return { input, err, log, isRaw: () => raw };
}

describe("reading a PIN twice on a terminal", () => {
  it("turns echo off before the first prompt is on the screen and gives the terminal back after", async () => {
    const t = terminal();
    const pin = readPinTwice(t.input, t.err);
    await new Promise((r) => setImmediate(r));
    expect(t.log[0]).toBe("raw true");
    expect(t.log[1]).toMatch(/^prompt New PIN/);
    t.input.write("5173\r");
    await new Promise((r) => setImmediate(r));
    expect(t.isRaw()).toBe(true); // still no echo while the second prompt waits
    t.input.write("5173\r");
    await expect(pin).resolves.toBe("5173");
    expect(t.isRaw()).toBe(false);
    expect(t.log.filter((l) => l.startsWith("raw"))).toEqual(["raw true", "raw false"]);
  });

  it("keeps keys typed ahead for the second entry (both PINs in one burst, CR LF as one Enter)", async () => {
    const t = terminal();
    const pin = readPinTwice(t.input, t.err);
    t.input.write("2468\r\n2468\r");
    await expect(pin).resolves.toBe("2468");
    expect(t.log.filter((l) => l.startsWith("prompt"))).toHaveLength(2);
  });

  it("refuses two different PINs and Ctrl-C, with the terminal back to echo", async () => {
    const t = terminal();
    const pin = readPinTwice(t.input, t.err);
    t.input.write("6284\r6285\r");
    await expect(pin).rejects.toThrow(/differ: nothing changed/);
    expect(t.isRaw()).toBe(false);

    const c = terminal();
    const cancelled = readPinTwice(c.input, c.err);
    c.input.write("12\u0003");
    await expect(cancelled).rejects.toThrow(/cancelled/);
    expect(c.isRaw()).toBe(false);
  });

  it("takes a backspace as a correction", async () => {
    const t = terminal();
    const pin = readPinTwice(t.input, t.err);
    t.input.write("5174\u007f3\r5173\r");
    await expect(pin).resolves.toBe("5173");
  });
});
