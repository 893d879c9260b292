// The long form of the fuzzers (the short forms run in CI: test/fuzz/). Every target gets
// `inputs` inputs from one seed, on fake time, and reports one JSON line:
//
//   {metric: "fuzz_<target>", value: inputs, unit: "inputs", crashes, unlocks, invariantViolations,
//    seed, ms, variants (with --verbose: their counters), findings (when any)}
//
//   node dist/scripts/fuzz.js [target...] [--inputs N] [--seed S] [--verbose]
//   targets: keypad readers boards mqtt admin (default all). A finding prints its input and the
//   seed: the same seed and options replay it exactly.
import { nodeMockClock, type FuzzClock } from "./fuzz/clock.js";
import { fuzzAdmin } from "./fuzz/admin.js";
import { fuzzBoards } from "./fuzz/boards.js";
import { fuzzKeypad } from "./fuzz/keypad.js";
import { fuzzMqtt } from "./fuzz/mqtt.js";
import { fuzzReaders } from "./fuzz/readers.js";
import { describeError, type FuzzReport } from "./fuzz/report.js";

export type FuzzEmit = (o: Record<string, unknown>) => void;

type Target = (n: number, seed: number, clock: FuzzClock) => Promise<FuzzReport[]>;

/** Each target and how it splits its inputs among its variants (every variant from the same seed). */
export const TARGETS: Record<string, Target> = {
  keypad: async (n, seed, clock) => [
    await fuzzKeypad({ inputs: Math.ceil((n * 3) / 4), seed, clock, lockout: "lenient" }),
    await fuzzKeypad({ inputs: Math.floor(n / 4), seed: seed + 1, clock, lockout: "default" }),
  ],
  readers: async (n, seed, clock) => [await fuzzReaders({ inputs: n, seed, clock })],
  boards: async (n, seed) => [await fuzzBoards({ inputs: n, seed })],
  mqtt: async (n, seed, clock) => [await fuzzMqtt({ inputs: Math.ceil(n / 2), seed, clock, verifier: true }), await fuzzMqtt({ inputs: Math.floor(n / 2), seed: seed + 1, clock, verifier: false })],
  admin: async (n, seed, clock) => [await fuzzAdmin({ inputs: n, seed, clock })],
};

export async function fuzz(emit: FuzzEmit, opts: { inputs: number; seed: number; targets?: string[]; verbose?: boolean }): Promise<void> {
  const names = opts.targets?.length ? opts.targets : Object.keys(TARGETS);
  for (const name of names) {
    const target = TARGETS[name];
    if (!target) throw new Error(`unknown fuzz target ${name} (known: ${Object.keys(TARGETS).join(", ")})`);
    // Fake time from FUZZ_T0 for each target, on node:test's MockTimers (real timers again after).
    const { clock, restore } = await nodeMockClock();
    // An error no input's call saw (a rejected promise nobody awaited, a throw in a timer) is a crash too.
    const escaped: string[] = [];
    const onEscape = (e: unknown) => void escaped.push(describeError(e));
    process.on("unhandledRejection", onEscape);
    process.on("uncaughtException", onEscape);
    const t0 = performance.now();
    let reports: FuzzReport[];
    try {
      reports = await target(opts.inputs, opts.seed, clock);
    } finally {
      restore();
      process.off("unhandledRejection", onEscape);
      process.off("uncaughtException", onEscape);
    }
    const sum = (k: "inputs" | "crashes" | "unlocks") => reports.reduce((s, r) => s + r[k], 0) + (k === "crashes" ? escaped.length : 0);
    const findings = [
      ...reports.flatMap((r) => r.findings.map((f) => ({ variant: r.target, ...f }))),
      ...escaped.slice(0, 20).map((detail) => ({ variant: name, kind: "crash", input: -1, detail: `escaped: ${detail}`, repro: "" })),
    ];
    emit({
      metric: `fuzz_${name}`,
      value: sum("inputs"),
      unit: "inputs",
      crashes: sum("crashes"),
      unlocks: sum("unlocks"),
      invariantViolations: reports.reduce((s, r) => s + (r.stats.invariantViolations ?? 0), 0),
      seed: opts.seed,
      ms: Math.round(performance.now() - t0),
      variants: reports.map((r) => ({ variant: r.target, seed: r.seed, inputs: r.inputs, ms: r.ms, ...(opts.verbose ? { stats: r.stats } : {}) })),
      ...(findings.length ? { findings } : {}),
      floor: null,
      target: null,
    });
  }
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: number) => {
    const at = args.indexOf(name);
    return at >= 0 ? Number(args.splice(at, 2)[1]) : fallback;
  };
  const inputs = flag("--inputs", 100_000);
  const seed = flag("--seed", Date.now() % 2 ** 31);
  const verbose = args.includes("--verbose");
  const targets = args.filter((a) => !a.startsWith("--"));
  await fuzz((o) => process.stdout.write(`${JSON.stringify(o)}\n`), { inputs, seed, targets, verbose });
}
