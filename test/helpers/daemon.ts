// Integration harness: a temporary data directory, the compiled daemon as a child process, and a
// sim-socket client that waits for events. Each test gets its own; teardown kills and removes.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SimEvent } from "../../src/sim/protocol.js";
import { slow } from "./slow.js";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = join(ROOT, "dist/lockerd/lockerd.js");

export function exampleConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as Record<string, unknown>;
}

export function tempDir(prefix = "lockerd-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface Daemon {
  child: ChildProcess;
  dir: string;
  dataDir: string;
  configFile: string;
  socket: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** Start the compiled daemon on a config (patched from the example) and wait for its ready line. */
export async function startDaemon(opts: { dir?: string; patch?: (cfg: Record<string, any>) => void; env?: NodeJS.ProcessEnv } = {}): Promise<Daemon> {
  const dir = opts.dir ?? tempDir();
  const cfg = exampleConfig() as Record<string, any>;
  cfg.log = { level: "info" };
  cfg.terminal = { ...cfg.terminal, messageMs: 500 };
  cfg.locks = { ...cfg.locks, pulseMs: 100, openVerifyMs: 400 };
  opts.patch?.(cfg);
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(cfg));
  const dataDir = join(dir, "data");
  const child = spawn(process.execPath, [MAIN, "--config", configFile, "--data", dataDir], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...opts.env } });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon not ready:\n${out}`)), slow(15_000));
    const check = () => {
      if (out.includes('"ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited ${code}:\n${out}`));
    });
  });
  return { child, dir, dataDir, configFile, socket: join(dataDir, "sim.sock"), output: () => out, exited };
}

/** Resolves once the daemon's output (its log lines) matches. */
export async function waitForOutput(d: Daemon, re: RegExp, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + slow(timeoutMs);
  while (!re.test(d.output())) {
    if (Date.now() > until) throw new Error(`daemon output never matched ${re}:\n${d.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function stopDaemon(d: Daemon, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
  if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill(signal);
  const code = await d.exited;
  if (process.env.LOCKERD_TEST_KEEP_LOG) appendFileSync(process.env.LOCKERD_TEST_KEEP_LOG, `\n=== daemon ${d.dir} exited ${code}\n${d.output()}`);
  return code;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A sim-socket client that keeps every event and waits for the one a test expects. */
export class SimClient {
  readonly events: SimEvent[] = [];
  private buf = "";
  private waiters: { pred: (e: SimEvent) => boolean; resolve: (e: SimEvent) => void }[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buf += chunk;
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const ev = SimEvent.parse(JSON.parse(this.buf.slice(0, nl)));
        this.buf = this.buf.slice(nl + 1);
        this.events.push(ev);
        this.waiters = this.waiters.filter((w) => (w.pred(ev) ? (w.resolve(ev), false) : true));
      }
    });
  }

  static async connect(path: string): Promise<SimClient> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    const c = new SimClient(socket);
    await c.waitFor((e) => e.ev === "hello");
    return c;
  }

  send(op: Record<string, unknown> | string): void {
    this.socket.write(typeof op === "string" ? `${op}\n` : `${JSON.stringify(op)}\n`);
  }

  /** Resolves with the first event (already received since `from`, or yet to come) matching pred. */
  waitFor<T extends SimEvent["ev"]>(
    pred: (e: SimEvent) => boolean,
    opts: { timeoutMs?: number; from?: number } = {},
  ): Promise<Extract<SimEvent, { ev: T }>> {
    const seen = this.events.slice(opts.from ?? 0).find(pred);
    if (seen) return Promise.resolve(seen as Extract<SimEvent, { ev: T }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting; last events: ${JSON.stringify(this.events.slice(-5))}`)), slow(opts.timeoutMs ?? 5000));
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e as Extract<SimEvent, { ev: T }>);
        },
      });
    });
  }

  mark(): number {
    return this.events.length;
  }

  since(mark: number): SimEvent[] {
    return this.events.slice(mark);
  }

  async state(): Promise<Extract<SimEvent, { ev: "state" }>["compartments"]> {
    const m = this.mark();
    this.send({ op: "state" });
    const ev = await this.waitFor<"state">((e) => e.ev === "state", { from: m });
    return ev.compartments;
  }

  close(): void {
    this.socket.destroy();
  }
}

export const displayHas = (text: string) => (e: SimEvent) => e.ev === "display" && e.lines.some((l) => l.includes(text));

/** A courier deposits a small parcel for recipient 1001; returns where it went and the code sent to them. */
export async function courierDeposit(sim: SimClient, recipient = "1001"): Promise<{ compartment: string; code: string; parcel: string }> {
  sim.send({ op: "keys", keys: "*2468#" });
  await sim.waitFor(displayHas("Parcel size?"));
  const m = sim.mark();
  sim.send({ op: "keys", keys: "1" });
  const unlock = await sim.waitFor<"unlock">((e) => e.ev === "unlock", { from: m });
  await sim.waitFor((e) => e.ev === "door" && e.compartment === unlock.compartment && e.state === "open", { from: m });
  sim.send({ op: "door", compartment: unlock.compartment, state: "closed" });
  await sim.waitFor(displayHas("Recipient number?"), { from: m });
  sim.send({ op: "keys", keys: `${recipient}#` });
  const notify = await sim.waitFor<"notify">((e) => e.ev === "notify", { from: m });
  await sim.waitFor(displayHas(`Stored in ${unlock.compartment}`), { from: m });
  sim.send({ op: "keys", keys: "*" }); // courier done
  await sim.waitFor(displayHas("Enter code"), { from: m });
  return { compartment: unlock.compartment, code: notify.code, parcel: notify.parcel };
}
