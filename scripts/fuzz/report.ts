// What every fuzz target reports: how many inputs it tried, what went wrong, and counters of what
// the inputs reached (so a run that never got past the first check is visible as such).

export interface Finding {
  kind: "crash" | "unlock" | "invariant";
  /** 0-based index of the input in the run (replay: same seed, same options). */
  input: number;
  detail: string;
  /** The input itself, printable (JSON), and what came just before it for stateful targets. */
  repro: string;
}

export interface FuzzReport {
  target: string;
  seed: number;
  inputs: number;
  crashes: number;
  unlocks: number;
  findings: Finding[];
  /** Counters of outcomes, by name. */
  stats: Record<string, number>;
  ms: number;
}

const KEEP = 20;

/** Collects findings and counters for one target's run. */
export class Tally {
  readonly findings: Finding[] = [];
  readonly stats: Record<string, number> = {};
  crashes = 0;
  unlocks = 0;
  private readonly t0 = performance.now();

  constructor(
    readonly target: string,
    readonly seed: number,
  ) {}

  count(name: string, n = 1): void {
    this.stats[name] = (this.stats[name] ?? 0) + n;
  }

  find(f: Finding): void {
    if (f.kind === "crash") this.crashes++;
    if (f.kind === "unlock") this.unlocks++;
    if (f.kind === "invariant") this.count("invariantViolations");
    if (this.findings.length < KEEP) this.findings.push(f);
  }

  report(inputs: number): FuzzReport {
    return { target: this.target, seed: this.seed, inputs, crashes: this.crashes, unlocks: this.unlocks, findings: this.findings, stats: this.stats, ms: Math.round(performance.now() - this.t0) };
  }
}

/** An error as one line (a stack's first frame helps to find a crash). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}${e.stack ? ` @ ${e.stack.split("\n")[1]?.trim() ?? ""}` : ""}`;
  return String(e);
}

/** JSON for a repro, with buffers as hex. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === "object" && (v as { type?: unknown }).type === "Buffer" && Array.isArray((v as { data?: unknown }).data)) {
      return `hex:${Buffer.from((v as { data: number[] }).data).toString("hex")}`;
    }
    return v;
  });
}
