// Keypad streams: random keys (0-9 * # and junk), badges and scans into the in-process bank's
// keypad, on fake time, while parcels wait in it for codes the fuzzer never types.
//
//   harness: 6 deposits through the keypad (codes known) ─▶ arm
//   fuzzer:  keys | badge | scan | wait  ─▶ SimHardware keypad ─▶ Terminal ─▶ Bank
//   after each input: no unlock, no session, no "Sorry, error", nothing thrown, the chain verifies
//   at the end:       no pickup in the ledger, every parcel still stored, the chain verifies
//
// The fuzzer holds no credential: digit runs that would end in a seeded PIN or a live code
// followed by # are changed (their # becomes *) before they are typed, scans of a live code are
// redrawn, and the seeded badges of active people are never presented (the inactive 04DEAD00 is).
import type { FuzzClock } from "./clock.js";
import { ChainWatch, closeAllDoors, depositThroughKeypad, fuzzBank, SEEDED_BADGES, SEEDED_PINS, type RawConfig } from "./bank.js";
import { describeError, show, Tally, type FuzzReport } from "./report.js";
import { Rng } from "./rng.js";

export type KeypadInput = { kind: "keys"; keys: string } | { kind: "badge"; id: string } | { kind: "scan"; text: string } | { kind: "wait"; ms: number };

export interface KeypadFuzzOptions {
  inputs: number;
  seed: number;
  clock: FuzzClock;
  /**
   * default: the example config's lockout (5 misses lock the keypad; most inputs are then refused
   * unchecked). lenient: 100 misses, 1 s, so nearly every input is checked against the ledger.
   */
  lockout: "default" | "lenient";
}

const KEYS = "0123456789*#";
const lenient = (cfg: RawConfig) => {
  cfg.lockout = { threshold: 100, baseDelayMs: 1000, maxDelayMs: 1000, decayMs: 10_000 };
};

/** What the terminal makes of a key string: only 0-9 * # count (Terminal.keys). */
const effective = (s: string) => [...s].filter((k) => /^[0-9*#]$/.test(k)).join("");

export function keypadInput(rng: Rng): KeypadInput {
  return rng.weighted<() => KeypadInput>([
    [4, () => ({ kind: "keys", keys: rng.string(KEYS, rng.int(1, 24)) })],
    [3, () => ({ kind: "keys", keys: `${rng.digits(rng.int(4, 12))}#` })],
    [2, () => ({ kind: "keys", keys: `*${rng.digits(rng.int(0, 13))}#` })],
    [1, () => ({ kind: "keys", keys: `${rng.digits(rng.int(13, 40))}${rng.pick(["#", "*", ""])}` })],
    [1, () => ({ kind: "keys", keys: [...rng.junk(rng.int(0, 16))].map((c) => (rng.chance(0.5) ? rng.pick([...KEYS]) : c)).join("") })],
    [0.2, () => ({ kind: "keys", keys: rng.pick(["", "#", "*", "##", "**", "*#", "#*"]) })],
    [1, () => ({ kind: "badge", id: rng.hex(rng.weighted([[4, rng.int(4, 32)], [1, rng.int(0, 40)]])) })],
    [0.5, () => ({ kind: "badge", id: rng.weighted([[3, () => rng.junk(rng.int(0, 40))], [1, () => "04DEAD00"], [1, () => mutateOne(rng, rng.pick(SEEDED_BADGES), "0123456789ABCDEF")]])() })],
    [1, () => ({ kind: "scan", text: `${rng.pick(["", "L:", "l:", "L", "L::", " L:"])}${rng.digits(rng.int(0, 14))}${rng.pick(["", " ", "\n", "#"])}` })],
    [0.7, () => ({ kind: "scan", text: rng.weighted([[3, () => rng.junk(rng.int(0, 40))], [1, () => rng.junk(rng.int(500, 700))], [1, () => rng.pick(["R-1", "PKG-77", "L:", "", " "])]])() })],
    [0.3, () => ({ kind: "wait", ms: rng.weighted([[3, rng.int(1, 2000)], [1, rng.pick([1000, 4000, 10_000, 30_000, 31_000, 60_000])], [0.1, rng.pick([300_000, 900_000])]]) })],
  ])();
}

function mutateOne(rng: Rng, s: string, alphabet: string): string {
  const i = rng.int(0, s.length - 1);
  let c = s[i]!;
  while (c.toUpperCase() === s[i]!.toUpperCase()) c = rng.pick([...alphabet]);
  return s.slice(0, i) + c + s.slice(i + 1);
}

export async function fuzzKeypad(opts: KeypadFuzzOptions): Promise<FuzzReport> {
  const tally = new Tally(`keypad-${opts.lockout}`, opts.seed);
  const rng = new Rng(opts.seed);
  const b = await fuzzBank({ patch: opts.lockout === "lenient" ? lenient : undefined });
  const { rt, hw } = b;
  const advance = (ms: number) => opts.clock.advance(ms);
  try {
    // Parcels to steal: for Ada (she has a badge), Alan and Grace.
    for (const [size, who] of [["1", "1001"], ["2", "1002"], ["3", "1003"], ["1", "1001"], ["1", "1003"], ["2", "1002"]] as const) {
      await depositThroughKeypad(b, advance, size, who);
    }
    await advance(1000);
    closeAllDoors(b);
    const live = b.codes.map((c) => c.code);
    const forbidden = [...SEEDED_PINS, ...live].map((d) => `${d}#`);
    const headAtArm = rt.ledger.headSeq;
    const storedAtArm = rt.ledger.compartments().filter((c) => c.state === "occupied").length;

    let current = -1;
    const recent: KeypadInput[] = [];
    const repro = () => show({ seed: opts.seed, lockout: opts.lockout, input: current, last: recent.slice(-8) });
    hw.on("unlock", (channel) => tally.find({ kind: "unlock", input: current, detail: `channel ${channel} pulsed (${rt.layout.find((l) => l.lock === channel)?.id ?? "?"})`, repro: repro() }));
    hw.on("display", (lines) => {
      const first = lines[0] ?? "";
      if (first === "Sorry, error") tally.find({ kind: "invariant", input: current, detail: `terminal showed "${lines.join(" | ")}"`, repro: repro() });
      if (first === "Code not valid" || first === "Too many tries" || first === "Too many digits") tally.count(first);
    });
    rt.terminal.on("session", (s) => {
      if (s.kind === "started") tally.find({ kind: "invariant", input: current, detail: `a session started for ${s.person} (via ${s.via})`, repro: repro() });
    });

    const chain = new ChainWatch(rt.ledger);
    let tail = "";
    for (let i = 0; i < opts.inputs; i++) {
      current = i;
      let input = keypadInput(rng);
      if (input.kind === "keys") {
        const window = tail + effective(input.keys);
        if (forbidden.some((f) => window.includes(f))) {
          input = { kind: "keys", keys: input.keys.replaceAll("#", "*") };
          tally.count("keysDefused");
        }
        tail = (tail + effective(input.keys)).slice(-16);
      } else if (input.kind === "badge" && SEEDED_BADGES.includes(input.id.toUpperCase())) {
        input = { kind: "badge", id: "0BADBAD0" };
      } else if (input.kind === "scan") {
        const m = /^(?:L:)?([0-9]{4,12})$/.exec(input.text.trim());
        if (m && live.includes(m[1]!)) input = { kind: "scan", text: `L:${m[1]!}0` };
      }
      recent.push(input);
      if (recent.length > 64) recent.shift();
      tally.count(input.kind);
      try {
        switch (input.kind) {
          case "keys":
            hw.keypad.keys(input.keys);
            break;
          case "badge":
            hw.keypad.badge(input.id);
            break;
          case "scan":
            hw.keypad.scan(input.text);
            break;
          case "wait":
            await advance(input.ms);
            break;
        }
        // lenient: the fuzzer waits out each lockout, so its next input is checked, not refused
        const lockedUntil = rt.ledger.terminal(b.config.terminal.id)?.lockedUntil ?? 0;
        if (opts.lockout === "lenient" && lockedUntil > Date.now()) await advance(lockedUntil - Date.now() + 1);
      } catch (e) {
        tally.find({ kind: "crash", input: i, detail: describeError(e), repro: repro() });
      }
      const broken = chain.check();
      if (broken) tally.find({ kind: "invariant", input: i, detail: `custody chain broken at #${broken.seq} (${broken.reason}): ${show(broken.event).slice(0, 600)}`, repro: repro() });
    }
    current = opts.inputs;
    await advance(2000);

    const fresh = rt.ledger.eventsFrom(headAtArm + 1, 10_000_000);
    const byType = (t: string) => fresh.filter((e) => e.type === t).length;
    for (const t of ["pickup.started", "parcel.picked_up", "deposit.started", "admin.open", "lock.retried"]) {
      if (byType(t)) tally.find({ kind: "invariant", input: -1, detail: `${byType(t)} ${t} event(s) after the fuzzer started`, repro: repro() });
    }
    const stored = rt.ledger.compartments().filter((c) => c.state === "occupied").length;
    if (stored !== storedAtArm) tally.find({ kind: "invariant", input: -1, detail: `${storedAtArm} parcels stored at the start, ${stored} at the end`, repro: repro() });
    const whole = rt.ledger.verify();
    if (!whole.ok) tally.find({ kind: "invariant", input: -1, detail: `custody chain: ${JSON.stringify(whole)}`, repro: repro() });
    tally.count("codeRejected", byType("code.rejected"));
    tally.count("lockedOut", byType("terminal.locked_out"));
    tally.count("bruteForceAlarms", byType("alarm.brute_force"));
  } finally {
    await b.close();
  }
  return tally.report(opts.inputs);
}
