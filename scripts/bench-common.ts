// What every benchmark shares: the JSON line it prints, percentiles, rounding, a scratch directory.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { DAEMON_FLAGS } from "./daemon-flags.js";

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

/**
 * Where a process's resident memory is, in MiB: the V8 heap (its spaces' physical size, and the
 * live part of it), the file-backed pages (node's own code and libraries, the addons), and the
 * rest of the anonymous memory: malloc (SQLite's page cache and statements, libuv, addons),
 * thread stacks, and V8's own bookkeeping outside its heap spaces. From /proc/self/smaps.
 */
export async function memoryBreakdown(): Promise<{ rss: number; v8Heap: number; v8Live: number; code: number; native: number }> {
  const { readFileSync } = await import("node:fs");
  const v8 = await import("node:v8");
  let file = 0;
  let anon = 0;
  let named = "";
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      named = head[1] ?? "";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      if (named.startsWith("/")) file += Number(rss[1]);
      else anon += Number(rss[1]);
    }
  }
  const spaces = v8.getHeapSpaceStatistics();
  const MiB = 2 ** 20;
  const v8Heap = spaces.reduce((s, x) => s + x.physical_space_size, 0) / MiB;
  const v8Live = spaces.reduce((s, x) => s + x.space_used_size, 0) / MiB;
  return { rss: process.memoryUsage().rss / MiB, v8Heap, v8Live, code: file / 1024, native: anon / 1024 - v8Heap };
}

/** The flags every figure runs the daemon with: the daemon's own, or BENCH_DAEMON_FLAGS to compare (space-separated; "" for none). */
export const BENCH_FLAGS: readonly string[] = process.env.BENCH_DAEMON_FLAGS === undefined ? DAEMON_FLAGS : process.env.BENCH_DAEMON_FLAGS.split(" ").filter(Boolean);

/** Milliseconds from spawning the compiled daemon `main` on `cfg` / `dataDir` to its ready line; then it is stopped. */
export function timeToReady(main: string, cfg: string, dataDir: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...BENCH_FLAGS, main, "--config", cfg, "--data", dataDir], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes('"ready')) {
        const ms = performance.now() - t0;
        child.kill("SIGTERM");
        child.on("exit", () => resolve(ms));
      }
    });
    child.on("exit", (code) => (out.includes('"ready') ? undefined : reject(new Error(`exit ${code}: ${out}`))));
  });
}
