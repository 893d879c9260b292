// The RS485 path end to end, on a real serial stack: the compiled daemon with the "real" profile
// (a serial keypad on one socat pseudo-terminal pair, two Kerong boards on another), the boards
// emulated in this process with their wire time at the configured baud (a pty moves bytes at once
// whatever the baud: KerongEmulator's wireBaud adds it back).
//
//   keywire  a pickup code typed on the keypad; from the '#' key's byte to the unlock frame on the bus,
//            while both boards are polled (default pollMs 250); floor: one poll exchange's wire time
//   idle     CPU time and bytes written by that daemon left alone, scaled to an hour
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { SerialPort } from "serialport";
import { parseConfig } from "../src/config/load.js";
import type { SimHardware } from "../src/drivers/sim/hardware.js";
import { KerongEmulator, type RxRecord } from "../src/drivers/rs485/emulator.js";
import { KerongConfig } from "../src/drivers/rs485/config.js";
import { silentLogger } from "../src/log.js";
import { SLOW_WRITE_MS } from "../src/ledger/ledger.js";
import { LEDGER_CHECK_DELAY_MS, Runtime } from "../src/runtime.js";
import { BENCH_FLAGS, pct, round, tmp, type Emit } from "./bench-common.js";

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * A daemon's start-up work is over this long after "ready": the ledger's background check (spawned
 * LEDGER_CHECK_DELAY_MS after the start; the spawn holds the loop 5-8 ms), the first checkpoint, and
 * V8's memory reducer (up to three full collections 8-10 s after the start, pauses of 2-10 ms).
 * Both figures are of a bank that has been running: a bank restarts rarely, where these rounds
 * restart the daemon every ~22 pickups.
 */
const STARTUP_SETTLE_MS = LEDGER_CHECK_DELAY_MS + 9000;
const MAIN = join(ROOT, "dist/lockerd/lockerd.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pty {
  host: string;
  device: string;
  close(): Promise<void>;
}

async function pty(dir: string, name: string): Promise<Pty> {
  const host = join(dir, `${name}-host`);
  const device = join(dir, `${name}-device`);
  const child = spawn("socat", [`pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], { stdio: "ignore" });
  child.on("error", () => undefined);
  for (let i = 0; i < 500 && !(existsSync(host) && existsSync(device)); i++) await sleep(10);
  await sleep(20);
  return {
    host,
    device,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/**
 * The far ends (the keypad, the boards) stand for hardware, which adds no latency of its own: they
 * read and write as the daemon does, off libuv's thread pool (newSerialPort), so the figure is the
 * daemon's and the pseudo-terminals', not a slower harness's.
 */
async function open(path: string, baudRate: number): Promise<SerialPort> {
  const { newSerialPort } = await import("../src/drivers/serial-binding.js");
  return new Promise((resolve, reject) => {
    const port = newSerialPort({ path, baudRate, autoOpen: false });
    port.open((err) => (err ? reject(err) : resolve(port)));
  });
}

const closePort = (p: SerialPort) => new Promise<void>((resolve) => (p.isOpen ? p.close(() => resolve()) : resolve()));

/** The example bank's compartments on two Kerong boards (channels 0-15, 16-31) and a serial keypad. */
function realConfig(example: Record<string, unknown>, bus: string, keypad: string): Record<string, unknown> {
  const cfg = structuredClone(example) as Record<string, unknown>;
  cfg.hardware = {
    profile: "real",
    boards: [{ type: "kerong", port: bus, boards: [{ address: 0, firstChannel: 0 }, { address: 1, firstChannel: 16 }] }],
    readers: [{ type: "serial-keypad", port: keypad }],
  };
  delete cfg.seed; // a real bank has no demo people; those the simulated start seeded stay in the ledger
  cfg.people = { owner: "lockerctl" };
  cfg.log = { level: "info" }; // as a bank runs; "ready" is an info line
  cfg.codes = { length: 8 };
  return cfg;
}

interface Daemon {
  child: ChildProcess;
  stop(): Promise<void>;
  /** Its log so far. */
  output(): string;
}

async function startDaemon(configFile: string, dataDir: string): Promise<Daemon> {
  const extra = process.env.BENCH_DAEMON_ARGS ? process.env.BENCH_DAEMON_ARGS.split(" ") : [];
  const child = spawn(process.execPath, [...BENCH_FLAGS, ...extra, MAIN, "--config", configFile, "--data", dataDir], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`daemon not ready: ${out}${err}`)), 20_000);
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes('"ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`daemon exited ${code}: ${out}${err}`)));
  });
  return {
    child,
    output: () => out,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Deposits into every free compartment of the bank in `dataDir` (simulated hardware, in process); returns their codes. */
async function fill(example: Record<string, unknown>, dataDir: string): Promise<string[]> {
  const raw = structuredClone(example) as Record<string, Record<string, unknown>>;
  raw.log = { level: "error" };
  raw.hardware = { ...raw.hardware, openDelayMs: 0, timeScale: 0 };
  raw.codes = { length: 8 };
  const rt = new Runtime({ config: parseConfig(raw), dataDir, log: silentLogger(), version: "bench", simSocket: false, adminSocket: false });
  await rt.start();
  const hw = rt.hardware as SimHardware;
  const courier = rt.ledger.person("courier-1")!;
  const codes: string[] = [];
  rt.bank.on("codeIssued", (n) => codes.push(n.code));
  // Largest first: a smaller parcel may be given a larger compartment (policies.offerLarger).
  const order = ["XL", "L", "M", "S", "XS"];
  for (const c of rt.ledger.compartments().sort((a, b) => order.indexOf(a.size) - order.indexOf(b.size))) {
    if (c.state !== "free" || !c.enabled) continue;
    let t;
    try {
      t = rt.bank.beginDeposit("bench", c.size, courier);
    } catch {
      continue; // a cold or low compartment, kept for parcels that ask for one
    }
    if (!(await t.result).opened) throw new Error("deposit door did not open");
    hw.doors.set(rt.bank.layoutOf(t.compartment).lock, "closed");
    rt.bank.completeDeposit(t.parcel!, "1001", courier.id);
  }
  await rt.stop();
  return codes;
}

/** A rig: the data directory, the two ptys, the emulated boards on the bus's far end, the keypad's far end. */
/** In `root` when given (tmpfs for a ledger without fsync), else the system's temporary directory. */
async function rig(example: Record<string, unknown>, root?: string) {
  const dir = root === undefined ? tmp() : mkdtempSync(join(root, "lockerd-bench-"));
  const bus = await pty(dir, "bus");
  const keys = await pty(dir, "keypad");
  const baud = KerongConfig.parse({ type: "kerong", port: bus.host, boards: [{ address: 0, firstChannel: 0 }] }).baudRate;
  const emu = new KerongEmulator({ boards: [0, 1], wireBaud: baud });
  const busPort = await open(bus.device, baud);
  const detach = emu.attach(busPort);
  const keypad = await open(keys.device, 9600);
  const configFile = join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify(realConfig(example, bus.host, keys.host)));
  return {
    dir,
    dataDir: join(dir, "data"),
    configFile,
    emu,
    keypad,
    baud,
    async close() {
      detach();
      await closePort(busPort);
      await closePort(keypad);
      await bus.close();
      await keys.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the next frame the emulated boards receive that `match` accepts. */
function nextFrame(emu: KerongEmulator, match: (r: Extract<RxRecord, { rx: string }>) => boolean, timeoutMs = 5000): Promise<{ rec: Extract<RxRecord, { rx: string }>; at: number }> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emu.off("rx", on);
      reject(new Error("no such frame in time"));
    }, timeoutMs);
    const on = (r: RxRecord) => {
      if (!("rx" in r) || !match(r)) return;
      clearTimeout(t);
      emu.off("rx", on);
      resolve({ rec: r, at: performance.now() });
    };
    emu.on("rx", on);
  });
}

const write = (port: SerialPort, text: string) => new Promise<void>((resolve, reject) => port.write(text, (e) => (e ? reject(e) : resolve())));

/**
 * Key to wire: a pickup code's '#' (its byte written to the keypad's line) to the unlock frame's
 * first byte on the bus (the emulated boards see it), while the daemon polls both boards. The '#'
 * comes at a random moment of the poll cycle. Each round fills the bank's compartments (in process,
 * the daemon stopped), then picks them up through the keypad: the door springs (the emulator sets
 * its lock bit), is seen open by a poll, is closed, is seen closed.
 *
 * Twice: with the data directory on the disk (the figure; the pickup's durable commit and so the
 * disk's fsync are on the path), then on tmpfs (/dev/shm, where an fsync returns at once: the same
 * path, the bus's queue and the daemon's work, without the disk), each with the disk's fsync timed
 * in the same run. BENCH_WIRE_LEDGER=disk or memory runs one of them.
 */
export async function keyToWire(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const which = process.env.BENCH_WIRE_LEDGER ?? "both";
  const variants: { suffix: string; root: string | undefined; where: string }[] = [];
  if (which !== "memory") variants.push({ suffix: "", root: undefined, where: "data directory on the disk" });
  if (which !== "disk" && existsSync("/dev/shm")) variants.push({ suffix: "_tmpfs", root: "/dev/shm", where: "data directory on tmpfs (/dev/shm): no fsync" });
  for (const v of variants) {
    const m = await measureKeyToWire(example, v.root);
    // Each sample in the order taken, with how long after its daemon's start and the polls meanwhile.
    if (process.env.BENCH_WIRE_DUMP) writeFileSync(`${process.env.BENCH_WIRE_DUMP}${v.suffix}`, JSON.stringify(m.trace));
    const samples = m.trace.map((t) => t.ms).sort((a, b) => a - b);
    const exchange = ((5 + 9) * 10 * 1000) / m.baud; // a status read (5 bytes) and its answer (9)
    const note = `${samples.length} pickups at the keypad from ${STARTUP_SETTLE_MS / 1000} s after the daemon's start (its start-up work done), compiled daemon, ${v.where}, 2 Kerong boards polled every 250 ms at ${m.baud} baud over socat ptys, wire time emulated; floor: one poll exchange's wire time (14 bytes)`;
    emit({ metric: `key_to_unlock_frame${v.suffix}_p50`, value: round(pct(samples, 50)), unit: "ms", floor: round(exchange), target: null, note });
    emit({ metric: `key_to_unlock_frame${v.suffix}_p99`, value: round(pct(samples, 99)), unit: "ms", floor: round(exchange), target: round(exchange + 2), note });
    emit({ metric: `key_to_unlock_frame${v.suffix}_max`, value: round(samples.at(-1)!), unit: "ms", floor: round(exchange), target: null, note });
    const withPoll = m.trace.filter((t) => t.pollsAt.length > 0).map((t) => t.ms);
    if (withPoll.length) emit({
      metric: `key_to_unlock_frame${v.suffix}_behind_poll_max`,
      value: round(Math.max(...withPoll)),
      unit: "ms",
      floor: round(exchange),
      target: round(exchange + 2),
      note: `${note}; the ${withPoll.length} pickups whose '#' met a poll on the bus (a status read reached the boards between the '#' and the unlock)`,
    });
    if (v.root !== undefined) continue;
    // The durable commit is on the path: how the disk behaved meanwhile says whether a tail is the disk's.
    const f = m.fsync.sort((a, b) => a - b);
    const fnote = `${f.length} fsyncs of a 4 KiB rewrite (as a WAL commit's) on the daemon's filesystem, 5 between each two pickups of key_to_unlock_frame`;
    emit({ metric: "keywire_disk_fsync_p99", value: round(pct(f, 99)), unit: "ms", floor: null, target: null, note: fnote });
    emit({ metric: "keywire_disk_fsync_max", value: round(f.at(-1) ?? NaN), unit: "ms", floor: null, target: null, note: fnote });
    emit({
      metric: "keywire_daemon_slow_writes",
      value: m.slowWrites.reduce((n, w) => n + w.count, 0),
      unit: "count",
      floor: 0,
      target: null,
      note: `ledger writes of ${SLOW_WRITE_MS} ms or more the daemons reported ("slow disk", at most one line a minute, each with its count); worst reported: ${Math.max(0, ...m.slowWrites.map((w) => w.ms))} ms`,
    });
  }
}

interface KeyToWireRun {
  baud: number;
  trace: { ms: number; sinceStart: number; pollsAt: number[] }[];
  fsync: number[];
  slowWrites: { ms: number; count: number }[];
}

async function measureKeyToWire(example: Record<string, unknown>, root: string | undefined): Promise<KeyToWireRun> {
  const SAMPLES = Number(process.env.BENCH_WIRE_SAMPLES ?? 144);
  const r = await rig(example, root);
  const trace: KeyToWireRun["trace"] = [];
  const probe = fsyncProbe(join(tmp(), "probe"));
  const slowWrites: KeyToWireRun["slowWrites"] = [];
  try {
    const pollMs = KerongConfig.parse({ type: "kerong", port: "x", boards: [{ address: 0, firstChannel: 0 }] }).pollMs;
    while (trace.length < SAMPLES) {
      const codes = await fill(example, r.dataDir);
      if (!codes.length) throw new Error("no free compartment to deposit into");
      const d = await startDaemon(r.configFile, r.dataDir);
      const started = performance.now();
      try {
        // Both boards answered once: the bank knows its doors; then its start-up work is done.
        await nextFrame(r.emu, (f) => f.command === "read-status" && f.board === 1);
        await sleep(STARTUP_SETTLE_MS);
        for (const code of codes) {
          if (trace.length >= SAMPLES) break;
          await write(r.keypad, code);
          await sleep(20 + Math.random() * pollMs); // anywhere in the poll cycle
          const unlock = nextFrame(r.emu, (f) => f.command === "unlock");
          // The polls the boards saw meanwhile: when a sample is long, was one on the wire?
          const polls: number[] = [];
          const onPoll = (f: RxRecord) => {
            if ("rx" in f && f.command === "read-status") polls.push(performance.now());
          };
          r.emu.on("rx", onPoll);
          const t0 = performance.now();
          await write(r.keypad, "#");
          const { rec, at } = await unlock;
          r.emu.off("rx", onPoll);
          trace.push({ ms: round(at - t0), sinceStart: Math.round(t0 - started), pollsAt: polls.map((p) => round(p - t0)) });
          // Seen open by a poll of that board (its answer carries the open bit), then shut and seen shut.
          const seen = () => nextFrame(r.emu, (f) => f.command === "read-status" && f.board === rec.board);
          await seen();
          await seen();
          probe.sample(5); // the disk's fsync, between pickups, on the disk's filesystem
          r.emu.closeDoor(rec.board, rec.lock!);
          await seen();
          await seen();
        }
      } finally {
        await d.stop();
        // The daemon's own word on its disk: its first slow ledger write each minute, with how many there were.
        for (const line of d.output().split("\n")) {
          if (!line.includes("slow disk")) continue;
          const w = JSON.parse(line) as { ms: number; slowWrites: number };
          slowWrites.push({ ms: w.ms, count: w.slowWrites });
        }
      }
    }
  } finally {
    probe.close();
    await r.close();
  }
  return { baud: r.baud, trace, fsync: probe.times, slowWrites };
}

/** fsync of a 4 KiB block rewritten in place in `dir`, timed: how the disk answers a commit's sync. */
function fsyncProbe(file: string): { times: number[]; sample(n: number): void; close(): void } {
  const fd = openSync(file, "w+");
  const block = Buffer.alloc(4096, 0x5a);
  writeSync(fd, block, 0, block.length, 0);
  fsyncSync(fd);
  const times: number[] = [];
  return {
    times,
    sample(n) {
      for (let i = 0; i < n; i++) {
        writeSync(fd, block, 0, block.length, 0);
        const t = performance.now();
        fsyncSync(fd);
        times.push(performance.now() - t);
      }
    },
    close() {
      closeSync(fd);
      rmSync(dirname(file), { recursive: true, force: true });
    },
  };
}

/** utime + stime of a process, in seconds. */
/** CPU seconds of `pid` and of its children it has waited for (the ledger's background check). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100; // utime stime cutime cstime, USER_HZ
}
/** Times the main thread of `pid` went to sleep waiting (voluntary context switches): its wake-ups. */
const mainThreadWakeups = (pid: number) => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8"))?.[1] ?? NaN);
const writeBytes = (pid: number) => Number(/write_bytes: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? NaN);

/**
 * Idle: the same daemon (two RS485 boards polled, a serial keypad, no server) left alone for
 * BENCH_IDLE_S (60) seconds after it settled, scaled to an hour: CPU seconds and bytes written.
 * Floor: node with the dependencies loaded, waking at the same rate as the polls (8 a second).
 */
export async function idle(example: Record<string, unknown>, emit: Emit): Promise<void> {
  const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 60);
  const r = await rig(example);
  let cpu = 0;
  let bytes = 0;
  let wakeups = 0;
  let floorCpu = 0;
  try {
    await fill(example, r.dataDir); // a bank in use: every compartment holds a parcel
    const d = await startDaemon(r.configFile, r.dataDir);
    try {
      await sleep(STARTUP_SETTLE_MS); // the start-up work done (the ledger's check runs daily after that)
      const pid = d.child.pid!;
      const c0 = cpuSeconds(pid);
      const w0 = writeBytes(pid);
      const k0 = mainThreadWakeups(pid);
      await sleep(IDLE_S * 1000);
      cpu = cpuSeconds(pid) - c0;
      bytes = writeBytes(pid) - w0;
      wakeups = mainThreadWakeups(pid) - k0;
    } finally {
      await d.stop();
    }
    const floor = spawn(
      process.execPath,
      [...BENCH_FLAGS, "--input-type=module", "-e", "await Promise.all(['better-sqlite3','zod','pino'].map((m) => import(m))); setInterval(() => {}, 125);"],
      { cwd: ROOT, stdio: "ignore" },
    );
    await sleep(1000);
    const f0 = cpuSeconds(floor.pid!);
    await sleep(Math.min(IDLE_S, 30) * 1000);
    floorCpu = ((cpuSeconds(floor.pid!) - f0) * IDLE_S) / Math.min(IDLE_S, 30);
    floor.kill();
  } finally {
    await r.close();
  }
  const hour = 3600 / IDLE_S;
  const note = `compiled daemon, 2 Kerong boards polled every 250 ms (emulated, wire time at ${r.baud} baud), serial keypad, no server; measured over ${IDLE_S} s and scaled to an hour`;
  emit({ metric: "idle_cpu_percent", value: round((cpu / IDLE_S) * 100, 2), unit: "% of one core", floor: round((floorCpu / IDLE_S) * 100, 2), target: 1, note: `${note}; floor: node with the dependencies, waking 8 times a second` });
  emit({ metric: "idle_hour_cpu_seconds", value: round(cpu * hour, 1), unit: "s", floor: round(floorCpu * hour, 1), target: 36, note });
  emit({
    metric: "idle_main_thread_wakeups_per_second",
    value: round(wakeups / IDLE_S, 1),
    unit: "1/s",
    floor: 16,
    target: null,
    note: `${note}; voluntary context switches of the daemon's main thread (/proc/PID/task/PID/status); floor: per poll exchange one wake-up to start it and one for the answer, 8 exchanges a second`,
  });
  emit({ metric: "idle_hour_bytes_written_rs485", value: Math.round(bytes * hour), unit: "B", floor: null, target: 1_048_576, note: `${note}; from /proc/PID/io write_bytes` });
}
