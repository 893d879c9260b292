// What every benchmark shares: the JSON line it prints, percentiles, rounding, a scratch directory.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One figure: `{metric, value, unit, floor, target, note}`, the floor measured in the same run. */
export interface Line {
  metric: string;
  value: number;
  unit: string;
  floor: number | null;
  target: number | null;
  note?: string;
}
export type Emit = (l: Line) => void;

export const emit: Emit = (l) => process.stdout.write(`${JSON.stringify(l)}\n`);
export const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
/** The p-th percentile of an ascending array. */
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
export const median = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);

export function tmp(): string {
  return mkdtempSync(join(tmpdir(), "lockerd-bench-"));
}
