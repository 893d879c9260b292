// The emulated boards without a serial port: frames in, byte-exact answers out, the API (doors,
// item sensors, faults), the JSON-line control protocol, and the emulator script's command line.
import { describe, expect, it } from "vitest";
import { Cu8aEmulator, GARBAGE, KerongEmulator, applyControl } from "../../../src/drivers/rs485/emulator.js";
import { parseCli } from "../../../scripts/kerong-emulator.js";

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");

function wire<E extends KerongEmulator | Cu8aEmulator>(emu: E) {
  const tx: string[] = [];
  const rx: object[] = [];
  emu.on("tx", (b) => tx.push(b.toString("hex")));
  emu.on("rx", (r) => rx.push(r));
  return { tx, rx };
}

describe("KerongEmulator", () => {
  it("answers a status read byte-exact and ignores other boards", () => {
    const emu = new KerongEmulator({ boards: [0, 1] });
    const { tx, rx } = wire(emu);
    emu.input(hex("02 00 30 03 35"));
    // every lock closed = bit 1 with lockBitOpen 0, no items: 02 00 35 FF FF 00 00 03 (sum 0x238 → 0x38)
    expect(tx).toEqual(["020035ffff00000338"]);
    emu.input(hex("02 20 30 03 55"));
    expect(tx).toHaveLength(1);
    expect(rx).toEqual([
      { rx: "0200300335", board: 0, command: "read-status" },
      { rx: "0220300355", board: 2, command: "read-status" },
    ]);
  });

  it("opens a lock on unlock (no answer), closes it through the API, reports items", () => {
    const emu = new KerongEmulator({ boards: [1] });
    const { tx } = wire(emu);
    emu.input(hex("02 12 31 03 48"));
    expect(tx).toEqual([]);
    expect(emu.isOpen(1, 3)).toBe(true);
    emu.setItem(1, 16, true);
    emu.input(hex("02 10 30 03 45"));
    // lock 3 bit 0 (open): L1-8 FB, L9-16 FF; IR9-16 80: 02+10+35+FB+FF+00+80+03 = 0x2C4 → C4
    expect(tx).toEqual(["021035fbff008003c4"]);
    emu.closeDoor(1, 3);
    expect(emu.state()).toEqual([{ board: 1, open: [], items: [16], fault: "none" }]);
  });

  it("misbehaves on request: silent, truncated, garbage first, bad checksum", () => {
    const emu = new KerongEmulator({ boards: [0] });
    const { tx } = wire(emu);
    const ask = () => emu.input(hex("02 00 30 03 35"));
    emu.setFault(0, "silent");
    ask();
    expect(tx).toEqual([]);
    emu.setFault(0, "truncate");
    ask();
    expect(tx.pop()).toBe("020035ffff");
    emu.setFault(0, "garbage");
    ask();
    expect(tx.pop()).toBe(GARBAGE.toString("hex") + "020035ffff00000338");
    emu.setFault(0, "bad-checksum");
    ask();
    expect(tx.pop()).toBe("020035ffff000003c7");
  });

  it("reports bytes that are no frame", () => {
    const emu = new KerongEmulator({ boards: [0] });
    const { rx } = wire(emu);
    emu.input(hex("ff 02 00 31 03 36"));
    expect(rx).toEqual([
      { discarded: "ff", reason: "no STX" },
      { rx: "0200310336", board: 0, command: "unlock", lock: 1 },
    ]);
  });

  it("honours the configured polarities", () => {
    const emu = new KerongEmulator({ boards: [0], lockBitOpen: 1, irBitPresent: 0 });
    const { tx } = wire(emu);
    emu.input(hex("02 00 30 03 35"));
    // closed = bit 0, no item = bit 1: 02 00 35 00 00 FF FF 03 → 0x238 → 38
    expect(tx).toEqual(["0200350000ffff0338"]);
  });
});

describe("Cu8aEmulator", () => {
  it("answers unlock, read-all and single queries byte-exact", () => {
    const emu = new Cu8aEmulator({ boards: [1] });
    const { tx } = wire(emu);
    emu.input(hex("80 01 00 33 B2"));
    expect(tx.pop()).toBe("8001ffffff334d");
    emu.input(hex("8A 01 01 11 9B"));
    expect(tx.pop()).toBe("8a0101008a");
    emu.input(hex("80 01 01 33 B3"));
    expect(tx.pop()).toBe("8001010080");
    emu.input(hex("80 01 00 33 B2"));
    // lock 1 open = bit 0 in S3 (high-first): 80 01 FF FF FE 33 → 4C
    expect(tx.pop()).toBe("8001fffffe334c");
    emu.closeDoor(1, 1);
    emu.input(hex("80 01 01 33 B3"));
    expect(tx.pop()).toBe("8001011191");
  });

  it("can stay silent on unlock (firmwares that do not answer)", () => {
    const emu = new Cu8aEmulator({ boards: [1], answerUnlock: false });
    const { tx } = wire(emu);
    emu.input(hex("8A 01 01 11 9B"));
    expect(tx).toEqual([]);
    expect(emu.isOpen(1, 1)).toBe(true);
  });
});

describe("control protocol", () => {
  it("applies door, item, fault and raw commands and reports state", () => {
    const emu = new KerongEmulator({ boards: [0, 1] });
    const { tx } = wire(emu);
    emu.input(hex("02 00 31 03 36"));
    expect(applyControl(emu, '{"cmd":"item","board":1,"lock":2,"present":true}')).toEqual({ ok: true });
    expect(applyControl(emu, '{"cmd":"fault","board":1,"mode":"silent"}')).toEqual({ ok: true });
    expect(applyControl(emu, '{"cmd":"state"}')).toEqual({
      ok: true,
      boards: [
        { board: 0, open: [1], items: [], fault: "none" },
        { board: 1, open: [], items: [2], fault: "silent" },
      ],
    });
    expect(applyControl(emu, '{"cmd":"door","board":0,"lock":1,"state":"closed"}')).toEqual({ ok: true });
    expect(emu.isOpen(0, 1)).toBe(false);
    expect(applyControl(emu, '{"cmd":"raw","hex":"ff02"}')).toEqual({ ok: true });
    expect(tx).toEqual(["ff02"]);
  });

  it("answers bad lines with a coded error and never throws", () => {
    const emu = new KerongEmulator({ boards: [0] });
    expect(applyControl(emu, "nope")).toEqual({ ok: false, error: { code: "bad_input", message: "not JSON" } });
    expect(applyControl(emu, '{"cmd":"door","board":0,"lock":1}')).toMatchObject({ ok: false, error: { code: "bad_input", message: expect.stringMatching(/^state/) } });
    expect(applyControl(emu, '{"cmd":"door","board":5,"lock":1,"state":"open"}')).toEqual({
      ok: false,
      error: { code: "bad_input", message: "no emulated board 5" },
    });
    expect(applyControl(emu, '{"cmd":"item","board":0,"lock":17,"present":true}')).toMatchObject({ ok: false, error: { code: "bad_input" } });
  });
});

describe("kerong-emulator command line", () => {
  it("parses the documented options with defaults per protocol", () => {
    expect(parseCli(["--port", "/tmp/x/b", "--boards", "0,1", "--control", "/tmp/x/c.sock"])).toEqual({
      port: "/tmp/x/b",
      protocol: "kerong",
      boards: [0, 1],
      baudRate: 19200,
      control: "/tmp/x/c.sock",
      lockBitOpen: 0,
      irBitPresent: 1,
      statusBytes: 3,
      statusOrder: "high-first",
    });
    expect(parseCli(["--port", "/dev/x", "--protocol", "cu8a", "--boards", "1", "--lock-bit-open", "1"])).toMatchObject({
      protocol: "cu8a",
      baudRate: 9600,
      boards: [1],
      lockBitOpen: 1,
    });
  });

  it("refuses a missing port, bad boards and unknown options", () => {
    expect(() => parseCli([])).toThrow(/--port is required/);
    expect(() => parseCli(["--port", "/x", "--boards", "0,16"])).toThrow(/--boards/);
    expect(() => parseCli(["--port", "/x", "--protocol", "modbus"])).toThrow(/--protocol/);
    expect(() => parseCli(["--port", "/x", "--speed", "1"])).toThrow();
  });
});
