// The SIGKILL harness, long form (npm run bench): ≥ 50 kills under keypad and command load, its
// figures as JSON lines. The checks are scripts/kill-harness.ts's; what each proves is written in
// test/integration/kill-harness.test.ts (the short form that runs in the suite).
//
//   node dist/scripts/bench-kill.js [kills]     alone (KILL_SEED=n to repeat a run's choices)
import { pathToFileURL } from "node:url";
import { median, pct, round } from "./bench-common.js";
import { runKillHarness } from "./kill-harness.js";

export async function killHarness(emit: (o: Record<string, unknown>) => void, opts: { kills: number }): Promise<void> {
  const r = await runKillHarness({ kills: opts.kills, progress: process.env.BENCH_DEBUG ? (l) => process.stderr.write(`${l}\n`) : undefined });
  const c = r.counters;
  const phases = Object.entries(r.phases)
    .sort(([, a], [, b]) => b - a)
    .map(([p, n]) => `${p} ${n}`)
    .join(", ");
  const cycles = [...r.cycleMs].sort((a, b) => a - b);
  emit({ metric: "kill_harness_kills", value: r.kills, unit: "kills", floor: null, target: 50, note: `seed ${r.seed} (KILL_SEED); ${c.aimedKills} aimed at a phase's start, the rest at a random time; the keypad flow at each kill: ${phases}; ${c.lockedOut} keypad lockouts waited out` });
  emit({
    metric: "kill_harness_deposits_acknowledged",
    value: c.depositsAcked + c.reservedDepositsAcked,
    unit: "deposits",
    floor: null,
    target: null,
    note: `${c.depositsAcked} by size + ${c.reservedDepositsAcked} reserved by the server; ${c.noFit} refused (no fit); every one checked present after each later kill`,
  });
  emit({
    metric: "kill_harness_pickups_acknowledged",
    value: c.pickupsAcked,
    unit: "pickups",
    floor: null,
    target: null,
    note: `by code; plus ${c.remotePickups} remote and ${c.staffRemovals} staff removals of what kills left; ${c.probes} used codes typed again, ${c.inDoubtCodesUsed} codes in doubt at a kill settled used, ${c.inDoubtCodesLive} still valid`,
  });
  emit({
    metric: "kill_harness_violations",
    value: r.violations.length,
    unit: "violations",
    floor: null,
    target: 0,
    note: r.violations.length
      ? r.violations.slice(0, 3).map((v) => `cycle ${v.cycle} ${v.check}: ${v.detail.slice(0, 200)}`).join(" | ")
      : `integrity_check, chain + gap-free seq (head ${r.headSeq}), acknowledged deposits/pickups/commands, codes, ${r.eventsReceived} events at the server unchanged, relays quiet and selftest after each restart`,
  });
  emit({
    metric: "kill_harness_cycle",
    value: round(median(cycles), 0),
    unit: "ms",
    floor: round(median(r.restartMs), 0),
    target: null,
    note: `median of ${cycles.length} (p95 ${round(pct(cycles, 95), 0)}): restart checks, technician, load, kill, file checks, restart; floor: restart to ready (median; to online ${round(median(r.onlineMs), 0)} ms)`,
  });
  emit({
    metric: "kill_harness_commands",
    value: c.reservesAcked + c.cancelsAcked + c.snapshots,
    unit: "commands",
    floor: null,
    target: null,
    note: `answered: ${c.reservesAcked} reserve, ${c.cancelsAcked} cancel, ${c.snapshots} snapshot; ${c.commandsResent} re-sent after restarts`,
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const kills = Number(process.argv[2] ?? 50);
  killHarness((o) => process.stdout.write(`${JSON.stringify(o)}\n`), { kills }).catch((e: unknown) => {
    process.stderr.write(`bench-kill: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
