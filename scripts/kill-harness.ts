// The SIGKILL harness (lockerd issue 12, point 8): the compiled daemon on one data directory, linked
// to a real mosquitto, under keypad and server-command load, killed with SIGKILL at a seeded random
// moment, checked on the file it left, restarted, checked again before any input; N times.
//
//   ┌─ start / restart (same data dir) ─▶ checks after restart ─▶ technician ─▶ load ──┐
//   │        ▲                             (no flow left to pulse, selftest,  keypad ∥   │
//   │        │                              codes, used codes typed again)    server    │ SIGKILL at
//   │        └── checks after the kill (read-only ledger: integrity_check,              │ a seeded
//   │            chain + gap-free seq, acknowledged deposits / pickups / commands, ◀────┘ random time
//   │            codes, every event the server received is there unchanged)
//   └─ after the last kill: restart, checks, SIGTERM, the file checked once more
//
// What each check proves is written in test/integration/kill-harness.test.ts. Used by that test
// (short form) and by `npm run bench` (scripts/bench-kill.ts, long form).
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadDeviceKey } from "../src/ledger/datadir.js";
import { publicKeyB64 } from "../src/sync/seal.js";
import { Mosquitto } from "./broker.js";
import { Killed, ServerLink, SimLink, Stalled, STEP_MS, within } from "./kill-clients.js";
import { keypadLoad, seeded, serverLoad, type LoadContext } from "./kill-load.js";
import { Model, type Counters, type Violation } from "./kill-model.js";
import { checkAfterKill, checkAfterRestart, probeUsedCodes, type Oracle } from "./kill-oracle.js";
import { tidyUp } from "./kill-technician.js";

/** The checkout: the nearest directory above this file with a package.json (src and dist alike). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("kill harness: no package.json above this file");
    dir = up;
  }
  return dir;
}

export interface KillHarnessOptions {
  kills: number;
  /** Seeds the choices (actions, sizes, recipients, kill times); KILL_SEED in the environment, else random. */
  seed?: number;
  /** The kill comes this long after the load starts, uniformly (ms). */
  killAfterMs?: readonly [number, number];
  /** A line per cycle, for a person watching. */
  progress?: (line: string) => void;
  /** The daemon's entry point; default dist/lockerd/lockerd.js of this checkout. */
  main?: string;
}

export interface KillReport {
  seed: number;
  kills: number;
  counters: Counters;
  violations: Violation[];
  /** Where the keypad flow was at each kill. */
  phases: Record<string, number>;
  /** Time the load spent in each phase (ms). */
  phaseMs: Record<string, number>;
  cycleMs: number[];
  restartMs: number[];
  /** Restart to the bank's "online" on the broker. */
  onlineMs: number[];
  headSeq: number;
  eventsReceived: number;
  duplicatesReceived: number;
}

interface Daemon {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const SITE = "hq";
const DEVICE = "bank-01";

function config(root: string, brokerUrl: string, serverKey: string, sealKey: string): Record<string, unknown> {
  const cfg = JSON.parse(readFileSync(join(root, "config.example.json"), "utf8")) as Record<string, Record<string, unknown>>;
  return {
    ...cfg,
    device: { site: SITE, id: DEVICE },
    log: { level: "info" },
    hardware: { ...cfg.hardware, openDelayMs: 20 },
    locks: { ...cfg.locks, pulseMs: 100, openVerifyMs: 600 },
    terminal: { ...cfg.terminal, messageMs: 500, offerMs: 2000, idleTimeoutMs: 5000 },
    // Eight digits: a wrong code (seven) never hits a live one, and a used code is not drawn again.
    codes: { length: 8 },
    // Wrong codes and used-code probes count as failures: a lockout must not swallow the run.
    lockout: { threshold: 100, baseDelayMs: 1000, maxDelayMs: 1000, decayMs: 10_000, alarmThreshold: 10_000, alarmWindowMs: 60_000 },
    sync: { enabled: true, url: brokerUrl, window: 64, reconnectBaseMs: 100, reconnectCapMs: 500, stateCoalesceMs: 50, telemetryS: 300, serverPublicKey: serverKey, sealKey },
  };
}

async function startDaemon(main: string, configFile: string, dataDir: string): Promise<Daemon> {
  const env = { ...process.env };
  delete env.RUNTIME_DIRECTORY; // the admin socket in the data directory
  const child = spawn(process.execPath, [main, "--config", configFile, "--data", dataDir], { stdio: ["ignore", "pipe", "pipe"], env });
  let out = "";
  const keep = (d: string) => {
    out = (out + d).slice(-200_000);
  };
  child.stdout!.setEncoding("utf8").on("data", keep);
  child.stderr!.setEncoding("utf8").on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lockerd not ready within 15 s:\n${out.slice(-3000)}`)), 15_000);
    const check = () => {
      if (!out.includes('"ready')) return;
      clearTimeout(timer);
      child.stdout!.off("data", check);
      resolve();
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`lockerd exited ${code} before ready:\n${out.slice(-3000)}`));
    });
  });
  return { child, output: () => out, exited };
}

/** Error and fatal lines of a run's log (pino JSON, level ≥ 50): nothing a kill causes should need one. */
function loggedErrors(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const l = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      if ((l.level ?? 0) >= 50) out.push(`${l.msg ?? ""}${l.err?.message ? `: ${l.err.message}` : ""}`);
    } catch {
      // a line cut by the kill
    }
  }
  return out;
}

/** Phases an aimed kill waits for: each starts a window between two commits, or right on one. */
const AIMS = ["pickup:typed", "pickup:unlocking", "pickup:door-closed", "deposit:size", "deposit:door-closed", "deposit:recipient", "reserved:scan", "reserved:door-closed"];

/** Resolves at the kill: `aim` entered (then `jitterMs` more), or `atMs` (`deadlineMs` when aimed and the phase never came). */
function killMoment(model: Model, aim: string | undefined, atMs: number, jitterMs: number, deadlineMs: number): Promise<void> {
  return new Promise((resolve) => {
    const fire = () => {
      model.onPhase = undefined;
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(fire, aim ? deadlineMs : atMs);
    if (aim) {
      model.onPhase = (phase) => {
        if (phase !== aim) return;
        model.onPhase = undefined;
        setTimeout(fire, jitterMs);
      };
    }
  });
}

export async function runKillHarness(opts: KillHarnessOptions): Promise<KillReport> {
  const seed = opts.seed ?? (Number(process.env.KILL_SEED) || randomInt(2 ** 31));
  const rng = seeded(seed);
  const [killMin, killMax] = opts.killAfterMs ?? [200, 2500];
  const root = repoRoot();
  const main = opts.main ?? join(root, "dist/lockerd/lockerd.js");
  const dir = mkdtempSync(join(tmpdir(), "lockerd-kill-"));
  const dataDir = join(dir, "data");
  const configFile = join(dir, "config.json");
  const adminPath = join(dataDir, "admin.sock");
  const simPath = join(dataDir, "sim.sock");
  const signing = generateKeyPairSync("ed25519");
  const sealing = generateKeyPairSync("x25519");
  const broker = new Mosquitto();
  const model = new Model();
  const server = new ServerLink(broker, { site: SITE, device: DEVICE }, { sign: signing.privateKey, seal: sealing.privateKey });
  const report: KillReport = { seed, kills: 0, counters: model.counters, violations: model.violations, phases: {}, phaseMs: model.phaseMs, cycleMs: [], restartMs: [], onlineMs: [], headSeq: 0, eventsReceived: 0, duplicatesReceived: 0 };
  let daemon: Daemon | undefined;
  let sim: SimLink | undefined;

  server.onReply((cmd, reply) => model.applyReply(cmd, reply));
  server.onEvent((e) => {
    if (e.type !== "parcel.deposited" || !e.parcel || !e.compartment) return;
    const code = server.sealedCodes.get(e.parcel);
    if (code) model.learnCode(e.parcel, code, e.compartment, "server");
    if (!model.deposits.has(e.parcel)) model.deposits.set(e.parcel, { cycle: model.cycle, via: "server" });
  });

  /** Restart on the same data directory; ready, then online at the broker. */
  const restart = async (): Promise<void> => {
    const online = server.nextStatus("online", 20_000);
    const t0 = performance.now();
    daemon = await startDaemon(main, configFile, dataDir);
    report.restartMs.push(performance.now() - t0);
    await online;
    report.onlineMs.push(performance.now() - t0);
  };

  /** Connect as the person at the bank, and check what the restart left before touching anything. */
  const afterRestart = async (oracle: Oracle): Promise<SimLink> => {
    const link = await SimLink.connect(simPath);
    model.expectNothing();
    link.onEvent((e) => model.onSimEvent(e));
    await checkAfterRestart({ ...oracle, sim: link, adminPath });
    // Used codes typed again: those of the last cycle (in doubt at the kill included), and one older.
    const used = model.usedCodes();
    const recent = used.filter((c) => (c.usedIn ?? 0) >= model.cycle - 1).slice(-2);
    const older = used.filter((c) => !recent.includes(c));
    // At most two: each is a failure on the lockout's count, which only decays after 10 s without one.
    const probes = [...recent, ...(older.length ? [older[Math.floor(rng() * older.length)]!] : [])].slice(0, 2).map((c) => c.code);
    await probeUsedCodes(link, model, probes);
    // A server re-sends what went unanswered (same id, same signature), and one answered command.
    const sent = [...server.commands.values()];
    const unanswered = sent.filter((c) => c.replies.length === 0);
    const answered = sent.filter((c) => c.replies[0]?.ok && (c.name === "reserve" || c.name === "cancel")).slice(-1);
    for (const cmd of [...unanswered, ...answered]) {
      model.counters.commandsResent++;
      const reply = await within(server.resend(cmd), STEP_MS);
      if (!reply) model.violation("commands are answered", `${cmd.name} ${cmd.id} re-sent after the restart: no reply`);
    }
    return link;
  };

  try {
    await broker.start();
    await server.connect();
    writeFileSync(configFile, JSON.stringify(config(root, broker.url, publicKeyB64(signing.publicKey), publicKeyB64(sealing.publicKey))));
    await restart();
    const oracle: Oracle = { dataDir, deviceKey: loadDeviceKey(dataDir, false), model, server };
    sim = await SimLink.connect(simPath);
    sim.onEvent((e) => model.onSimEvent(e));

    for (let cycle = 1; cycle <= opts.kills; cycle++) {
      const t0 = performance.now();
      model.cycle = cycle;
      if (cycle > 1) sim = await afterRestart(oracle);
      await tidyUp({ sim, server, model, adminPath, dataDir, staffPin: "8642" });

      let killed = false;
      const ctx: LoadContext = { sim, server, model, rng, killed: () => killed, courierPin: "2468", recipients: ["1001", "1002", "1003"], wrongCodes: 1 };
      const load = Promise.all([keypadLoad(ctx), serverLoad(ctx)]).catch((e: unknown) => {
        if (!(e instanceof Killed)) model.violation("harness", `load failed: ${(e as Error).stack ?? String(e)}`);
      });
      // Half the kills at a uniformly random time (they land where the time goes: mostly waits on a
      // commit); half aimed at the start of a phase, plus up to 25 ms, so short windows get hit too.
      const aim = rng() < 0.5 ? AIMS[Math.floor(rng() * AIMS.length)] : undefined;
      if (aim) model.counters.aimedKills++;
      await killMoment(model, aim, killMin + rng() * (killMax - killMin), rng() * 25, killMax * 2);
      killed = true;
      report.phases[model.phase] = (report.phases[model.phase] ?? 0) + 1;
      daemon!.child.kill("SIGKILL");
      await daemon!.exited;
      await load;
      sim.close();
      report.kills++;
      for (const e of loggedErrors(daemon!.output())) model.violation("no error logged", e);
      for (const l of sim.unreadable.splice(0)) model.violation("sim socket protocol", l.slice(0, 300));
      report.headSeq = checkAfterKill(oracle);
      await restart();
      report.cycleMs.push(performance.now() - t0);
      opts.progress?.(`kill ${cycle}/${opts.kills} in ${model.phase}: head ${report.headSeq}, ${model.violations.length} violations`);
    }

    model.cycle++;
    sim = await afterRestart(oracle);
    sim.close();
    daemon!.child.kill("SIGTERM");
    const code = await daemon!.exited;
    if (code !== 0) model.violation("clean stop", `exit ${code} on SIGTERM:\n${daemon!.output().slice(-2000)}`);
    for (const e of loggedErrors(daemon!.output())) model.violation("no error logged", e);
    report.headSeq = checkAfterKill(oracle);
    // At least once: after a clean stop the server holds every event the bank ever wrote.
    for (let i = 0; i < 150 && server.events.size < report.headSeq; i++) await new Promise((r) => setTimeout(r, 20));
    const missing = Array.from({ length: report.headSeq }, (_, i) => i + 1).filter((seq) => !server.events.has(seq));
    if (missing.length) model.violation("every event reaches the server", `${missing.length} of ${report.headSeq} never arrived, first ${missing.slice(0, 5).join(", ")}`);
    for (const l of server.unreadable) model.violation("server link protocol", l.slice(0, 300));
    report.eventsReceived = server.events.size;
    report.duplicatesReceived = server.duplicates;
    return report;
  } catch (e) {
    if (e instanceof Stalled || e instanceof Killed) {
      model.violation("harness", `${(e as Error).message}\n--- lockerd output ---\n${daemon?.output().slice(-4000) ?? ""}`);
      return report;
    }
    throw e;
  } finally {
    sim?.close();
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      daemon.child.kill("SIGKILL");
      await daemon.exited;
    }
    await server.close().catch(() => undefined);
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
