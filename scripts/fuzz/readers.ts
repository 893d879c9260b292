// Reader bytes: raw HID boot-keyboard reports into the real HID driver (on the emulated USB bus),
// serial keypad bytes, RDM6300 byte streams, Wiegand converter lines, and badge / scan lines into
// ReaderOutput. Nothing may throw; what comes out must be well formed; checksums and parity must
// catch what they can.
//
//   hid      reports (random, 8-byte with random usages, typed text) ─▶ HidReader ─▶ inputs
//            typed text after a clean line is an oracle: exactly that id / scan, or a discard
//   keypad   bytes ─▶ decodeKeypadBytes: keys only 0-9 * #, keys + noise + CR/LF = bytes
//   rdm6300  random bytes, random STX+12 hex+ETX frames, valid frames with one byte changed,
//            in random chunks ─▶ Rdm6300Parser: accepted tags carry a good checksum; a changed
//            frame never yields another id; bytes out + bytes held = bytes in
//   wiegand  random bit lines (26/34 mostly), valid lines with one bit flipped, decimal/hex lines
//            ─▶ wiegandLineId: a flipped bit never passes parity; ids well formed
//   lines    random text ─▶ ReaderOutput badge (as-is, decimal-to-hex) / scan
import { EventEmitter } from "node:events";
import { HidBusEmulator } from "../../src/drivers/readers/hid-emulator.js";
import { HidReader, HidReaderConfig } from "../../src/drivers/readers/hid.js";
import { KEY_ENTER, keyReport, typeReports } from "../../src/drivers/readers/keyboard.js";
import { badgeId, ReaderOutput } from "../../src/drivers/readers/output.js";
import { decodeRdm6300Frame, Rdm6300Parser, rdm6300Checksum, rdm6300Frame, type Rdm6300Item } from "../../src/drivers/readers/rdm6300.js";
import { decodeKeypadBytes } from "../../src/drivers/readers/serial.js";
import { encodeWiegand, wiegandLineId } from "../../src/drivers/readers/wiegand.js";
import type { Input, InputEvents } from "../../src/drivers/types.js";
import { silentLogger } from "../../src/log.js";
import type { FuzzClock } from "./clock.js";
import { describeError, show, Tally, type FuzzReport } from "./report.js";
import { Rng } from "./rng.js";

export interface ReadersFuzzOptions {
  inputs: number;
  seed: number;
  clock: FuzzClock;
}

const log = silentLogger();
const HEX_ID = /^[0-9A-F]{4,32}$/;
const TERMINAL = "fuzz";
/** Characters a wedge reader can type (keyboard.ts usageOf). */
const TYPABLE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_=+[{]}\\|;:'\",<.>/?`~ ";

/** Checks one input a reader emitted; returns why it is malformed, or null. */
function malformed(i: Input, form: "badge-as-is" | "badge-decimal" | "scan" | "keys"): string | null {
  if (i.terminal !== TERMINAL) return `terminal ${i.terminal}`;
  switch (i.kind) {
    case "badge":
      if (form === "badge-as-is") return HEX_ID.test(i.id) ? null : `badge id ${JSON.stringify(i.id)}`;
      if (form === "badge-decimal") return /^[0-9A-F]{8,17}$/.test(i.id) ? null : `badge id ${JSON.stringify(i.id)} (decimal-to-hex)`;
      return `a badge from a ${form} reader`;
    case "scan":
      if (form !== "scan") return `a scan from a ${form} reader`;
      return i.text.length > 0 && i.text.length <= 512 && i.text === i.text.trim() ? null : `scan ${JSON.stringify(i.text.slice(0, 80))} (${i.text.length} chars)`;
    case "keys":
      if (form !== "keys") return `keys from a ${form} reader`;
      return /^[0-9*#]+$/.test(i.keys) ? null : `keys ${JSON.stringify(i.keys)}`;
  }
}

export async function fuzzReaders(opts: ReadersFuzzOptions): Promise<FuzzReport> {
  const tally = new Tally("readers", opts.seed);
  const rng = new Rng(opts.seed);
  const share = (p: number) => Math.floor(opts.inputs * p);
  const parts = [share(0.3), share(0.1), share(0.25), share(0.2)];
  parts.push(opts.inputs - parts.reduce((s, n) => s + n, 0));
  let base = 0;
  const run = async (n: number, fn: (rng: Rng, n: number, base: number) => Promise<void> | void, salt: number) => {
    await fn(rng.fork(salt), n, base);
    base += n;
  };
  await run(parts[0]!, (r, n, at) => hid(r, n, at, tally, opts.clock), 1);
  await run(parts[1]!, (r, n, at) => serialKeypad(r, n, at, tally), 2);
  await run(parts[2]!, (r, n, at) => rdm6300(r, n, at, tally), 3);
  await run(parts[3]!, (r, n, at) => wiegand(r, n, at, tally), 4);
  await run(parts[4]!, (r, n, at) => lines(r, n, at, tally), 5);
  return tally.report(opts.inputs);
}

// ── HID ─────────────────────────────────────────────────────────────────────

type HidInput =
  | { kind: "report"; bytes: Buffer }
  | { kind: "typed"; text: string }
  | { kind: "wait"; ms: number }
  | { kind: "unplug" };

function hidInput(rng: Rng, reportId: boolean): HidInput {
  const len = (n: number) => n + (reportId ? 1 : 0);
  return rng.weighted<() => HidInput>([
    [2, () => ({ kind: "report", bytes: rng.bytes(rng.weighted([[3, len(8)], [1, rng.int(0, 12)], [0.1, rng.int(13, 80)]])) })],
    [
      5,
      () => {
        // a plausible report: shift or not, 0-6 keys drawn mostly from typing usages, Enter, rollover
        const usage = () => rng.weighted([[6, rng.int(0x04, 0x38)], [1, KEY_ENTER], [1, rng.int(0x54, 0x63)], [1, 0], [0.2, 0x01], [0.5, rng.int(0, 255)]]);
        const keys = Array.from({ length: 6 }, (_, i) => (i < rng.int(0, 3) ? usage() : 0));
        const r = Buffer.from([rng.pick([0, 0, 0x02, 0x20, rng.int(0, 255)]), rng.int(0, 3) === 0 ? rng.int(0, 255) : 0, ...keys]);
        return { kind: "report", bytes: reportId ? Buffer.concat([Buffer.from([rng.int(0, 255)]), r]) : r };
      },
    ],
    [2, () => ({ kind: "typed", text: rng.weighted([[2, () => rng.hex(rng.int(1, 34))], [1, () => rng.digits(rng.int(1, 22))], [1, () => rng.string(TYPABLE, rng.int(1, 64))]])() })],
    [0.3, () => ({ kind: "wait", ms: rng.pick([100, 499, 501, 2000]) })],
    [0.02, () => ({ kind: "unplug" })],
  ])();
}

async function hid(rng: Rng, n: number, base: number, tally: Tally, clock: FuzzClock): Promise<void> {
  const configs = [
    { emits: "badge", badgeIds: "as-is", reportId: false },
    { emits: "badge", badgeIds: "decimal-to-hex", reportId: false },
    { emits: "scan", reportId: false },
    { emits: "badge", badgeIds: "as-is", reportId: true },
  ] as const;
  const path = "/dev/hidraw-fuzz";
  for (let c = 0; c < configs.length; c++) {
    const cfg = configs[c]!;
    const form = cfg.emits === "scan" ? "scan" : cfg.badgeIds === "decimal-to-hex" ? "badge-decimal" : "badge-as-is";
    const bus = new HidBusEmulator();
    bus.plug({ vendorId: 0x08ff, productId: 0x0009, path });
    let now = 0;
    const reader = new HidReader(HidReaderConfig.parse({ type: "hid", path, terminal: TERMINAL, retryMaxMs: 1000, ...cfg }), { log, terminal: "unused", hid: bus, random: () => 0.5, now: () => now });
    const got: Input[] = [];
    let current = -1;
    let last: HidInput | undefined;
    reader.on("input", (i) => {
      got.push(i);
      const why = malformed(i, form);
      if (why) tally.find({ kind: "invariant", input: base + current, detail: `hid ${form}: ${why}`, repro: show({ reader: cfg, input: last }) });
    });
    await reader.start();
    const count = c === configs.length - 1 ? n - Math.floor(n / configs.length) * c : Math.floor(n / configs.length);
    for (let i = 0; i < count; i++) {
      current = base + i;
      const input = hidInput(rng, cfg.reportId);
      last = input;
      tally.count(`hid.${input.kind}`);
      try {
        if (input.kind === "wait") {
          now += input.ms;
          await clock.advance(input.ms);
        } else if (input.kind === "unplug") {
          bus.unplug(path);
          bus.plug({ vendorId: 0x08ff, productId: 0x0009, path });
          now += 1500;
          await clock.advance(1500); // within retryMaxMs: reopened
          if (!bus.isOpen(path)) tally.find({ kind: "invariant", input: current, detail: "hid reader did not reopen after a re-plug", repro: show({ reader: cfg }) });
        } else if (!bus.isOpen(path)) {
          tally.count("hid.notOpen");
        } else if (input.kind === "report") {
          bus.send(path, [input.bytes]);
        } else {
          // Oracle: after all keys up, Enter and all keys up, the typed text comes out whole, or not at all.
          const rid = cfg.reportId ? 0 : undefined;
          bus.send(path, [keyReport(0, false, rid), keyReport(KEY_ENTER, false, rid), keyReport(0, false, rid)]);
          now += 5000; // past the repeat window
          const before = got.length;
          bus.send(path, typeReports(input.text, rid));
          const out = got.slice(before);
          const want = cfg.emits === "scan" ? (input.text.trim() ? { kind: "scan", terminal: TERMINAL, text: input.text.trim() } : undefined) : expectedBadge(input.text, cfg.badgeIds);
          if (JSON.stringify(out) !== JSON.stringify(want ? [want] : [])) {
            tally.find({ kind: "invariant", input: current, detail: `hid ${form}: typed ${JSON.stringify(input.text)} gave ${JSON.stringify(out)}`, repro: show({ reader: cfg, input }) });
          } else tally.count(want ? "hid.typedAccepted" : "hid.typedRefused");
        }
      } catch (e) {
        tally.find({ kind: "crash", input: current, detail: `hid: ${describeError(e)}`, repro: show({ reader: cfg, input }) });
      }
    }
    tally.count("hid.emitted", got.length);
    for (const [reason, k] of Object.entries(reader.output.stats.discarded)) tally.count(`hid.discarded.${reason}`, k);
    await reader.stop();
  }
}

function expectedBadge(text: string, form: "as-is" | "decimal-to-hex"): Input | undefined {
  const t = text.trim();
  if (form === "decimal-to-hex") return /^[0-9]{1,20}$/.test(t) ? { kind: "badge", terminal: TERMINAL, id: BigInt(t).toString(16).toUpperCase().padStart(8, "0") } : undefined;
  return /^[0-9A-Fa-f]{4,32}$/.test(t) ? { kind: "badge", terminal: TERMINAL, id: t.toUpperCase() } : undefined;
}

// ── serial keypad ─────────────────────────────────────────────────────────

function serialKeypad(rng: Rng, n: number, base: number, tally: Tally): void {
  for (let i = 0; i < n; i++) {
    const chunk = rng.chance(0.5) ? rng.bytes(rng.int(0, 32)) : Buffer.from(rng.string("0123456789*#\r\n\r\n", rng.int(0, 32)), "latin1");
    try {
      const { keys, noise } = decodeKeypadBytes(chunk);
      const crlf = [...chunk].filter((b) => b === 0x0d || b === 0x0a).length;
      if (!/^[0-9*#]*$/.test(keys) || keys.length + noise + crlf !== chunk.length) {
        tally.find({ kind: "invariant", input: base + i, detail: `keypad bytes → keys ${JSON.stringify(keys)}, noise ${noise}, for ${chunk.length} bytes`, repro: show({ chunk }) });
      }
      tally.count("keypad.keys", keys.length);
      tally.count("keypad.noise", noise);
    } catch (e) {
      tally.find({ kind: "crash", input: base + i, detail: `serial keypad: ${describeError(e)}`, repro: show({ chunk }) });
    }
  }
}

// ── RDM6300 ───────────────────────────────────────────────────────────────

type RdmInput = { kind: "random" | "hexFrame" | "valid" | "mutated"; bytes: Buffer; original?: string };

function rdmInput(rng: Rng): RdmInput {
  return rng.weighted<() => RdmInput>([
    [3, () => ({ kind: "random", bytes: rng.bytes(rng.int(0, 40)) })],
    // STX, 12 random hex digits, ETX: only the checksum decides
    [3, () => ({ kind: "hexFrame", bytes: Buffer.concat([Buffer.from([2]), Buffer.from(rng.hex(12), "latin1"), Buffer.from([3])]) })],
    [1, () => ({ kind: "valid", bytes: rdm6300Frame(rng.hex(10)) })],
    [
      3,
      () => {
        const hex10 = rng.hex(10);
        const bytes = rdm6300Frame(hex10);
        const at = rng.int(0, bytes.length - 1);
        let b = bytes[at]!;
        while (b === bytes[at]) b = rng.int(0, 255);
        bytes[at] = b;
        return { kind: "mutated", bytes, original: hex10.toUpperCase() };
      },
    ],
  ])();
}

function rdm6300(rng: Rng, n: number, base: number, tally: Tally): void {
  // Each input alone on a fresh parser (what it yields is its own), and all of them back to back,
  // in random chunks, on one long-lived parser (resynchronisation, and the byte count).
  const stream = new Rdm6300Parser();
  let fed = 0;
  let out = 0;
  const tagOk = (item: Extract<Rdm6300Item, { kind: "tag" }>) => {
    const again = decodeRdm6300Frame(rdm6300Frame(item.full));
    return /^[0-9A-F]{10}$/.test(item.full) && item.card === item.full.slice(2) && again.kind === "tag" && again.full === item.full;
  };
  for (let i = 0; i < n; i++) {
    const input = rdmInput(rng);
    const fail = (detail: string) => tally.find({ kind: "invariant", input: base + i, detail: `rdm6300: ${detail}`, repro: show(input) });
    tally.count(`rdm6300.${input.kind}`);
    try {
      const alone = new Rdm6300Parser().push(input.bytes);
      let used = 0;
      for (const item of alone) {
        used += item.kind === "tag" ? 14 : item.bytes.length;
        if (item.kind === "discarded") continue;
        tally.count(`rdm6300.accepted.${input.kind}`);
        if (!tagOk(item)) fail(`tag ${JSON.stringify(item)} malformed`);
        if (input.kind === "mutated" && item.full !== input.original) fail(`a frame of ${input.original} with one byte changed read as ${item.full}`);
        if (input.kind === "valid" && alone.length !== 1) fail(`a valid frame gave ${alone.length} items`);
      }
      if (input.kind === "valid" && alone[0]?.kind !== "tag") fail("a valid frame was not read");
      if (input.bytes.length - used < 0 || input.bytes.length - used >= 64) fail(`${input.bytes.length} bytes in, ${used} out`);
      // the frame decoder alone agrees with the checksum
      if (input.bytes.length === 14) {
        const body = input.bytes.subarray(1, 13).toString("latin1");
        const good = input.bytes[0] === 2 && input.bytes[13] === 3 && /^[0-9A-Fa-f]{12}$/.test(body) && rdm6300Checksum(body.slice(0, 10)) === parseInt(body.slice(10), 16);
        const d = decodeRdm6300Frame(input.bytes);
        if ((d.kind === "tag") !== good) fail(`decode says ${d.kind}, the checksum says ${good ? "good" : "bad"}`);
      }
      const cut = rng.int(0, input.bytes.length);
      for (const chunk of [input.bytes.subarray(0, cut), input.bytes.subarray(cut)]) {
        fed += chunk.length;
        for (const item of stream.push(chunk)) {
          out += item.kind === "tag" ? 14 : item.bytes.length;
          if (item.kind === "tag") {
            tally.count("rdm6300.stream.accepted");
            if (!tagOk(item)) fail(`stream tag ${JSON.stringify(item)} malformed`);
          }
        }
      }
    } catch (e) {
      tally.find({ kind: "crash", input: base + i, detail: `rdm6300: ${describeError(e)}`, repro: show(input) });
    }
  }
  // Every byte of the stream is accounted for: out as a tag or a discarded run, or still held (< 64).
  if (fed - out < 0 || fed - out >= 64) tally.find({ kind: "invariant", input: base + n - 1, detail: `rdm6300 stream: ${fed} bytes in, ${out} out`, repro: "" });
  tally.count("rdm6300.stream.bytes", fed);
}

// ── Wiegand ───────────────────────────────────────────────────────────────

type WiegandInput = { kind: "randomBits" | "flipped" | "valid" | "junk"; line: string; format: "bits" | "decimal" | "hex" };

function wiegandInput(rng: Rng): WiegandInput {
  return rng.weighted<() => WiegandInput>([
    [3, () => ({ kind: "randomBits", format: "bits", line: rng.string("01", rng.weighted([[4, rng.pick([26, 34])], [1, rng.int(0, 40)]])) })],
    [
      3,
      () => {
        const line = encodeWiegand(rng.string("01", rng.pick([24, 32])));
        const at = rng.int(0, line.length - 1);
        return { kind: "flipped", format: "bits", line: line.slice(0, at) + (line[at] === "0" ? "1" : "0") + line.slice(at + 1) };
      },
    ],
    [1, () => ({ kind: "valid", format: "bits", line: `${rng.pick(["", " ", "\t"])}${encodeWiegand(rng.string("01", rng.pick([24, 32])))}${rng.pick(["", " ", "\r"])}` })],
    [2, () => ({ kind: "junk", format: rng.pick(["bits", "decimal", "hex"] as const), line: rng.weighted([[2, () => rng.junk(rng.int(0, 40))], [1, () => rng.digits(rng.int(0, 40))], [1, () => `${rng.pick(["0x", "0X", ""])}${rng.hex(rng.int(0, 40))}`]])() })],
  ])();
}

function wiegand(rng: Rng, n: number, base: number, tally: Tally): void {
  for (let i = 0; i < n; i++) {
    const input = wiegandInput(rng);
    tally.count(`wiegand.${input.kind}`);
    try {
      const r = wiegandLineId(input.line, input.format);
      if (!("id" in r)) {
        tally.count(`wiegand.refused.${r.reason}`);
        continue;
      }
      tally.count(`wiegand.accepted.${input.kind}`);
      const shape = input.format === "decimal" ? /^[0-9]{1,32}$/ : /^[0-9A-F]{1,32}$/;
      if (!shape.test(r.id)) tally.find({ kind: "invariant", input: base + i, detail: `wiegand ${input.format} id ${JSON.stringify(r.id)}`, repro: show(input) });
      if (input.kind === "flipped") tally.find({ kind: "invariant", input: base + i, detail: `wiegand: one flipped bit passed parity as ${r.id}`, repro: show(input) });
    } catch (e) {
      tally.find({ kind: "crash", input: base + i, detail: `wiegand: ${describeError(e)}`, repro: show(input) });
    }
  }
}

// ── badge and scan lines into ReaderOutput ───────────────────────────────

function lines(rng: Rng, n: number, base: number, tally: Tally): void {
  const source = new EventEmitter<InputEvents>();
  let now = 0;
  const output = new ReaderOutput(source, TERMINAL, 1500, log, () => now);
  let form: "badge-as-is" | "badge-decimal" | "scan" = "scan";
  let text = "";
  let i = 0;
  source.on("input", (input) => {
    const why = malformed(input, form);
    if (why) tally.find({ kind: "invariant", input: base + i, detail: `ReaderOutput ${form}: ${why}`, repro: show({ form, text }) });
    tally.count(`lines.emitted.${form}`);
  });
  for (i = 0; i < n; i++) {
    form = rng.pick(["badge-as-is", "badge-decimal", "scan"] as const);
    text = rng.weighted<() => string>([
      [3, () => rng.junk(rng.int(0, 40))],
      [2, () => `${rng.pick(["", " ", "\t"])}${rng.hex(rng.int(0, 36))}${rng.pick(["", " ", "\r"])}`],
      [2, () => rng.digits(rng.int(0, 30))],
      [1, () => rng.junk(rng.int(400, 600))],
    ])();
    now += rng.int(0, 3000);
    try {
      if (form === "scan") output.scan(text);
      else {
        output.badge(text, form === "badge-decimal" ? "decimal-to-hex" : "as-is");
        // badgeId alone: undefined or well formed
        const id = badgeId(text, form === "badge-decimal" ? "decimal-to-hex" : "as-is");
        if (id !== undefined && !/^[0-9A-F]{4,32}$/.test(id)) tally.find({ kind: "invariant", input: base + i, detail: `badgeId(${JSON.stringify(text)}) = ${id}`, repro: show({ form, text }) });
      }
    } catch (e) {
      tally.find({ kind: "crash", input: base + i, detail: `ReaderOutput ${form}: ${describeError(e)}`, repro: show({ form, text }) });
    }
  }
}
